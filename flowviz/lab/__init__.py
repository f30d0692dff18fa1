"""``flowviz lab``: the reference topologies, built from network namespaces it owns.

Everything lives in namespaces named ``fvlab-…``; the root namespace gets no
link, route, rule or sysctl. ``down`` removes every ``fvlab-`` namespace and
every process inside one, whatever state ``up`` left (also after it died
halfway). The lab is the live demo and the fixture of the live tests.
"""

from __future__ import annotations

import json
import os
import signal
import time

from ..errors import FlowvizError, LabError
from .net import list_lab_netns, netns_exists, netns_inode, remove_netns
from .state import LabState, clear

SCENARIOS = ("swarm-ingress", "overlay", "bridge", "macvlan", "host", "none", "container")


def _expand(scenario: str) -> list[str]:
    return list(SCENARIOS) if scenario == "all" else [scenario]


def _check_tools() -> None:
    import shutil
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed (apt-get install {pkg}, or run scripts/setup)")


def up(scenario: str = "swarm-ingress", *, quiet: bool = False) -> int:
    """Build a scenario (idempotent). On failure, undo it if the lab was not up before."""
    from .scenarios import BUILDERS, Lab
    from .traffic import wait_answered
    _check_tools()
    if LabState.load().faults:   # `lab break` faults go first: up builds what they took away anyway
        from .faults import fix_fault
        fix_fault("all", quiet=True)
    st = LabState.load()
    was_up = bool(list_lab_netns())
    lab = Lab(st)
    names = _expand(scenario)
    try:
        targets = []
        for name in names:
            targets.append((name, BUILDERS[name](lab)))
            if name not in st.scenarios:
                st.scenarios.append(name)
            st.save()
    except BaseException as e:
        lab.close()
        if not was_up:
            down(quiet=True)
        if isinstance(e, FlowvizError):
            raise
        if isinstance(e, Exception):
            raise LabError(f"lab up {scenario}: {type(e).__name__}: {e}") from e
        raise
    lab.close()
    failed = 0
    for name, target in targets:
        lat = wait_answered(target)
        if lat is None:
            failed += 1
        if not quiet:
            verdict = f"answered in {lat * 1000:.2f} ms" if lat is not None else "NOT answered"
            print(f"{name}: {target.label}: {verdict}")
    if not quiet and "swarm-ingress" in names:
        print(f"ingress load balancing: {st.ipvs}")
    return 1 if failed else 0


def _lab_pids() -> list[int]:
    """Every process whose network namespace is a lab namespace."""
    inodes = {i for i in (netns_inode(n) for n in list_lab_netns()) if i is not None}
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + 2
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _exists(p)]
            time.sleep(0.05)
        pids = alive


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # reap our own children so they do not linger as zombies
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def down(*, quiet: bool = False) -> int:
    """Remove every lab namespace and every process in one."""
    st = LabState.load()
    pids = {s["pid"] for s in st.servers} | set(_lab_pids())
    _kill(sorted(pids))
    removed = []
    for name in list_lab_netns():
        remove_netns(name)
        removed.append(name)
    clear()
    if not quiet:
        print(f"removed {len(removed)} namespaces" + (f" and {len(pids)} processes" if pids else ""))
    return 0


def status(*, as_json: bool = False) -> int:
    from .scenarios import TARGETS
    from .traffic import one_request
    st = LabState.load()
    present = list_lab_netns()
    checks = {}
    for name in st.scenarios:
        t = TARGETS[name]
        lat = one_request(t, "tcp", timeout=1.0) if netns_exists(t.netns) else None
        checks[name] = {"request": t.label, "answered": lat is not None,
                        "latency_ms": round(lat * 1000, 3) if lat is not None else None}
    if as_json:
        out = {"scenarios": st.scenarios, "ipvs": st.ipvs, "checks": checks, "faults": sorted(st.faults),
               "namespaces": {n: (st.namespaces[n].__dict__ if n in st.namespaces else None) for n in present}}
        print(json.dumps(out, indent=1))
        return 0
    if not present:
        print("the lab is down")
        return 0
    print(f"scenarios up: {', '.join(st.scenarios) or 'none'}")
    if st.ipvs:
        print(f"ingress load balancing: {st.ipvs}")
    for name in st.faults:
        from .faults import FAULTS
        print(f"broken ({name}): {FAULTS[name].what}; `flowviz lab fix {name}` undoes it")
    for n in present:
        r = st.namespaces.get(n)
        label = f"{r.label} ({r.role})" if r else "(not recorded)"
        extra = ", ".join(f"{c['name']} [{c['mode']}]" for c in r.containers) if r and r.containers else ""
        print(f"  {n:18} {label}{'  ' + extra if extra else ''}")
    for name, c in checks.items():
        verdict = f"answered in {c['latency_ms']} ms" if c["answered"] else "NOT answered"
        print(f"{name}: {c['request']}: {verdict}")
    return 0
