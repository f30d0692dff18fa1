"""Helpers shared by every test kind (import as ``support``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def sample(name: str) -> str:
    """Path of a bundled capture, found through the package like the program does."""
    return str(resources.files("flowviz.pcaps") / name)


def sample_captures() -> list[str]:
    """Paths of every bundled capture, in name order."""
    folder = resources.files("flowviz.pcaps")
    return sorted(str(folder / p.name) for p in folder.iterdir() if p.name.endswith((".pcapng", ".pcap")))


def flowviz(*args: str, timeout: float = 120, check: bool = False, input=None) -> subprocess.CompletedProcess:
    """Run the flowviz command line as a user would."""
    r = subprocess.run([sys.executable, "-m", "flowviz", *args], capture_output=True, text=True, timeout=timeout,
                       input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"flowviz {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def stop_group(proc: subprocess.Popen, timeout: float) -> None:
    """Stop a process started with start_new_session=True and everything in its group: SIGTERM,
    and SIGKILL to whatever is still there after ``timeout`` seconds. The whole group, not the
    leader alone: a leader that is a wrapper script (Debian's chromium-headless-shell) exits first
    and leaves its children running."""
    def alive() -> bool:
        proc.poll()   # reap the leader, or it stays in the group as a zombie
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive():
            break
    proc.wait()


def stock_kernel_features() -> list[str]:
    """What the stock-kernel tests need that this kernel lacks (empty: all there)."""
    missing = []
    if not any(os.path.exists(f"{r}/kprobe_events") for r in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")):
        missing.append("kprobes")
    if not os.path.exists("/proc/net/ip_vs"):
        missing.append("IPVS")
    return missing


#: for tests that need kprobes and IPVS: they run in the stock-kernel stage (scripts/vmtest)
needs_stock_kernel = pytest.mark.skipif(
    bool(stock_kernel_features()),
    reason=f"needs {' and '.join(stock_kernel_features()) or 'nothing'}, which this kernel lacks: "
           "runs in the stock-kernel stage (scripts/vmtest)")
