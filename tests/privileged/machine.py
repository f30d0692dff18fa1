"""What privileged tests must leave as they found it: one snapshot of the host, compared before/after.

Links, routes, policy rules, iptables and ip6tables (without counters), nft tables, mounts, ip_forward
and the lab's namespaces. iproute2 bind-mounts /run/netns on itself the first time a namespace is
added and keeps it; that housekeeping mount is not counted.
"""

from __future__ import annotations

import os
import shutil
import subprocess

IPROUTE2_OWN = {"/run/netns", "/var/run/netns"}


def _run(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(list(argv), capture_output=True, text=True).stdout


def _without_counters(dump: str) -> str:
    out = []
    for line in dump.splitlines():
        if line.startswith("#"):
            continue
        out.append(line.split(" [")[0] if line.startswith(":") else line)
    return "\n".join(out)


def state() -> dict:
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(m for m in (l.split()[4] for l in f) if m not in IPROUTE2_OWN)
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read().strip()
    lab = sorted(n for n in os.listdir("/run/netns") if n.startswith("fvlab-")) if os.path.isdir("/run/netns") else []
    return {
        "links": sorted(l.split(":")[1].strip().split("@")[0] for l in _run("ip", "-o", "link", "show").splitlines()),
        "routes": _run("ip", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "iptables": _without_counters(_run("iptables-save")),
        "ip6tables": _without_counters(_run("ip6tables-save")),
        "nft_tables": sorted(_run("nft", "list", "tables").split("\n")),
        "mounts": mounts,
        "ip_forward": forward,
        "lab_netns": lab,
    }


def differences(before: dict, after: dict) -> list[str]:
    """What differs, each as "what: -gone, +new" (lines of a listing, or items of a list), so that a
    failure says what changed, not only where."""
    out = []
    for k in before:
        if before[k] == after[k]:
            continue
        was, now = before[k], after[k]
        if isinstance(was, str):
            was, now = was.splitlines(), now.splitlines()
        if not isinstance(was, list):
            was, now = [was], [now]
        gone = [f"-{x}" for x in was if x not in now]
        new = [f"+{x}" for x in now if x not in was]
        out.append(f"{k}: {', '.join(gone + new) or 'the same lines in another order'}")
    return out
