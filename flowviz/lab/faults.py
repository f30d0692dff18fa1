"""``flowviz lab break WHAT`` / ``lab fix WHAT``: one controlled fault in the swarm ingress path.

Each fault takes away one piece of the notes' path, so that a followed packet shows where it now
ends and why. ``break`` records exactly what it removed or changed (the rule and its position in
its chain, the policy, the MTUs, the FDB entries) in the lab's state, and ``fix`` puts back
exactly that; ``lab down`` removes every fault with the namespaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from .. import reference as ref
from ..errors import LabError
from .net import netns_exists, run_in
from .state import LabState

SBOX, NODE1, OV1, OV2, TASK = "fvlab-n1-sbox", "fvlab-node1", "fvlab-n1-ingress", "fvlab-n2-ingress", "fvlab-n2-task"

#: the devices of the ingress overlay path on both nodes that Docker gives the overlay MTU (1450)
OVERLAY_DEVICES = ((SBOX, "eth0"), (OV1, "veth0"), (OV1, "vxlan0"), (OV1, "br0"),
                   (OV2, "vxlan0"), (OV2, "veth1"), (OV2, "br0"), (TASK, "eth0"))


# --- rules, policies, MTUs and FDB entries, each with its exact undo ------------------------------

def _rules(ns: str, table: str, chain: str) -> list[str]:
    """The chain's rules as ``iptables -S`` writes them, without the ``-A CHAIN`` in front."""
    out = run_in(ns, "iptables", "-w", "-t", table, "-S", chain).stdout.splitlines()
    prefix = f"-A {chain} "
    return [line[len(prefix):] for line in out if line.startswith(prefix)]


def _remove_rules(ns: str, table: str, chain: str, wanted: Callable[[str], bool]) -> list[dict]:
    """Delete the rules ``wanted`` picks; what was deleted, with each rule's 1-based position."""
    removed = []
    for pos, spec in enumerate(_rules(ns, table, chain), start=1):
        if wanted(spec):
            removed.append({"ns": ns, "table": table, "chain": chain, "pos": pos, "rule": spec})
    for r in reversed(removed):   # from the end, so the positions before stay true
        run_in(ns, "iptables", "-w", "-t", table, "-D", chain, str(r["pos"]))
    return removed


def _restore_rules(undo: dict) -> None:
    import shlex
    for r in undo["rules"]:   # in order of position: each goes back where it was
        if r["rule"] not in _rules(r["ns"], r["table"], r["chain"]):
            run_in(r["ns"], "iptables", "-w", "-t", r["table"], "-I", r["chain"], str(r["pos"]),
                   *shlex.split(r["rule"]))


def _mtu(ns: str, dev: str) -> int:
    raw = json.loads(run_in(ns, "ip", "-j", "link", "show", "dev", dev).stdout)
    return int(raw[0]["mtu"])


def _set_mtu(ns: str, dev: str, mtu: int) -> None:
    run_in(ns, "ip", "link", "set", "dev", dev, "mtu", str(mtu))


def _fdb(ns: str, dev: str) -> list[dict]:
    return json.loads(run_in(ns, "bridge", "-j", "fdb", "show", "dev", dev).stdout or "[]")


# --- the faults -------------------------------------------------------------------------------------

def _break_mtu() -> dict:
    before = [{"ns": ns, "dev": dev, "mtu": _mtu(ns, dev)} for ns, dev in OVERLAY_DEVICES]
    for d in before:
        _set_mtu(d["ns"], d["dev"], 1500)
    return {"mtus": before}


def _fix_mtu(undo: dict) -> None:
    # ports before their bridge on the way down: a bridge's MTU may not be above what its ports take
    for d in sorted(undo["mtus"], key=lambda d: d["dev"] == "br0"):
        _set_mtu(d["ns"], d["dev"], d["mtu"])


def _learning(ns: str, dev: str) -> bool:
    link = json.loads(run_in(ns, "ip", "-d", "-j", "link", "show", "dev", dev).stdout or "[{}]")[0]
    return bool(link.get("linkinfo", {}).get("info_data", {}).get("learning", True))


def _set_learning(ns: str, dev: str, on: bool) -> None:
    run_in(ns, "ip", "link", "set", "dev", dev, "type", "vxlan", "learning" if on else "nolearning")


def _break_fdb() -> dict:
    # learning off first: any packet from the other node (a late FIN, an ARP probe) would otherwise
    # teach vxlan0 the way back before the followed request is sent
    learning = _learning(OV1, "vxlan0")
    if learning:
        _set_learning(OV1, "vxlan0", False)
    entries = [e for e in _fdb(OV1, "vxlan0") if e.get("dst")]
    for e in entries:
        run_in(OV1, "bridge", "fdb", "del", e["mac"], "dev", "vxlan0", "dst", e["dst"])
    # what the kernel learned comes back by itself; only what was configured is put back
    return {"learning": learning, "entries": [{"mac": e["mac"], "dst": e["dst"]} for e in entries
                                              if "permanent" in (e.get("state") or "permanent")]}


def _fix_fdb(undo: dict) -> None:
    have = {(e["mac"], e.get("dst")) for e in _fdb(OV1, "vxlan0")}
    for e in undo["entries"]:
        if (e["mac"], e["dst"]) not in have:
            run_in(OV1, "bridge", "fdb", "append", e["mac"], "dev", "vxlan0", "dst", e["dst"])
    if undo.get("learning", True):
        _set_learning(OV1, "vxlan0", True)


def _break_mark() -> dict:
    mark = f"--set-xmark {ref.FWMARK:#x}/"
    return {"rules": _remove_rules(SBOX, "mangle", "PREROUTING", lambda spec: mark in spec)}


def _break_snat() -> dict:
    to = f"--to-source {ref.SBOX_INGRESS_IP}"
    return {"rules": _remove_rules(SBOX, "nat", "POSTROUTING", lambda spec: "-j SNAT" in spec and to in spec)}


def _policy(ns: str, chain: str) -> str:
    for line in run_in(ns, "iptables", "-w", "-S", chain).stdout.splitlines():
        if line.startswith(f"-P {chain} "):
            return line.split()[2]
    raise LabError(f"{ns}: no policy for {chain}")


def _break_forward() -> dict:
    old = _policy(NODE1, "FORWARD")
    run_in(NODE1, "iptables", "-w", "-P", "FORWARD", "DROP")
    return {"policy": old}


def _fix_forward(undo: dict) -> None:
    run_in(NODE1, "iptables", "-w", "-P", "FORWARD", undo["policy"])


@dataclass(frozen=True)
class Fault:
    what: str                         #: one line: what breaks
    expect: str                       #: one line: what a followed packet shows then
    do: Callable[[], dict]
    undo: Callable[[dict], None]
    needs: tuple = (SBOX, NODE1, OV1, OV2, TASK)


FAULTS: dict[str, Fault] = {
    "mtu": Fault("the ingress overlay's MTU back to 1500 (sbox eth0, veth0/veth1, br0, vxlan0 and the task's eth0)",
                 "a full-size packet (lab traffic --proto udp --size 1472) now gets past ingress_sbox, which "
                 "refused it at 1450 (PKT_TOO_BIG), and only node1's vxlan0 finds that 1500 + 50 bytes do not fit "
                 "the wire: it turns it back as ICMP 'fragmentation needed'",
                 _break_mtu, _fix_mtu),
    "fdb": Fault("node1's vxlan0 forgets where VNI 4096's other node is "
                 "(its FDB entries are deleted, and it learns none back)",
                 "the request reaches vxlan0 and is dropped there: VXLAN has no remote to send it to",
                 _break_fdb, _fix_fdb),
    "mark": Fault("ingress_sbox's mangle rule that marks the published port 0x11e is removed",
                  "nothing gives the packet mark 0x11e, so IPVS (FWM 286) never takes it: it is delivered to "
                  "ingress_sbox itself, where no one listens",
                  _break_mark, _restore_rules),
    "snat": Fault("ingress_sbox's SNAT to 10.255.0.3 is removed",
                  "the task sees the client's own address and answers it directly, out of its docker_gwbridge "
                  "leg instead of back through ingress_sbox: the reply goes astray",
                  _break_snat, _restore_rules),
    "forward": Fault("node1's FORWARD policy becomes DROP",
                     "node1 routes the published port's packet towards docker_gwbridge and netfilter drops it",
                     _break_forward, _fix_forward),
}


def _ready(name: str) -> tuple[Fault, LabState]:
    fault = FAULTS.get(name)
    if fault is None:
        raise LabError(f"no fault named {name!r} (one of: {', '.join(FAULTS)})")
    st = LabState.load()
    if "swarm-ingress" not in st.scenarios or not all(netns_exists(n) for n in fault.needs):
        raise LabError("faults break the swarm ingress path: run `flowviz lab up` first")
    return fault, st


def break_fault(name: str, *, quiet: bool = False) -> int:
    fault, st = _ready(name)
    if name in st.faults:
        if not quiet:
            print(f"{name}: already broken ({fault.what}); `flowviz lab fix {name}` undoes it")
        return 0
    st.faults[name] = fault.do()
    st.save()
    if not quiet:
        print(f"broken: {fault.what}\nfollow a packet to see it: {fault.expect}\nundo with: flowviz lab fix {name}")
    return 0


def fix_fault(name: str, *, quiet: bool = False) -> int:
    if name == "all":
        for n in list(LabState.load().faults):
            fix_fault(n, quiet=quiet)
        return 0
    fault, st = _ready(name)
    undo = st.faults.get(name)
    if undo is None:
        if not quiet:
            print(f"{name}: not broken")
        return 0
    fault.undo(undo)
    del st.faults[name]
    st.save()
    if not quiet:
        print(f"fixed: {name} is as `lab up` made it")
    return 0
