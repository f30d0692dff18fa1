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
    """Where tracefs is mounted, or None."""
    for root in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    return None


def tracefs(mount: bool = True) -> str:
    """Where tracefs is; mounted at /sys/kernel/tracing first when it is nowhere (needs root)."""
    root = tracefs_root()
    if root is not None:
        return root
    if mount:
        import subprocess
        subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACEFS_CANDIDATES[0]], capture_output=True)
        if os.path.isdir(os.path.join(TRACEFS_CANDIDATES[0], "events")):
            return TRACEFS_CANDIDATES[0]
    raise MissingFeature("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing")


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
