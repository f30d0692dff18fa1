"""What the running kernel offers, asked once in one place: privileges, tracefs, the release,
and the environment bcc compiles in. Shared by the live source, the optional hooks and doctor.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Optional

from ..errors import MissingFeature

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21


def has_privileges() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as f:
            caps = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return False
    return bool(caps & (1 << CAP_SYS_ADMIN)) or (bool(caps & (1 << CAP_BPF)) and bool(caps & (1 << CAP_PERFMON)))


def tracefs_root() -> Optional[str]:
    """Where tracefs is mounted and readable, or None."""
    for root in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    return None


def tracefs_mounted() -> Optional[str]:
    """Where tracefs is mounted, readable or not (/proc/self/mounts says), or None."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    return parts[1]
    except OSError:
        pass
    return None


def tracefs_problem() -> tuple[str, str]:
    """(why tracefs cannot be used, the fix): not mounted, or mounted where only root may read it."""
    where = tracefs_mounted()
    if where is not None:
        return f"tracefs at {where} is readable by root only", "run as root (sudo flowviz ...)"
    return "tracefs is not mounted", "mount -t tracefs tracefs /sys/kernel/tracing"


def tracefs(mount: bool = True) -> str:
    """Where tracefs is; mounted at /sys/kernel/tracing first when it is nowhere (needs root)."""
    root = tracefs_root()
    if root is not None:
        return root
    if mount and tracefs_mounted() is None:
        import subprocess
        subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACEFS_CANDIDATES[0]], capture_output=True)
        if os.path.isdir(os.path.join(TRACEFS_CANDIDATES[0], "events")):
            return TRACEFS_CANDIDATES[0]
    why, fix = tracefs_problem()
    raise MissingFeature(f"{why}: {fix}")


def release() -> tuple[int, int, int]:
    """The running kernel's version, (major, minor, patch): "6.1.0-56-amd64" → (6, 1, 0)."""
    parts = os.uname().release.split("-")[0].split(".")
    nums = [int(x) if x.isdigit() else 0 for x in (parts + ["0", "0"])[:3]]
    return nums[0], nums[1], nums[2]


def bpf_dir():
    return resources.files("flowviz.bpf")


def use_shim_headers() -> None:
    """Point bcc at the shim include tree: it then needs no kernel headers (DESIGN.md)."""
    os.environ["BCC_KERNEL_SOURCE"] = str(bpf_dir() / "shim")
