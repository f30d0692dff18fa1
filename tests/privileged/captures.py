"""Capturing in lab namespaces with the real tools (dumpcap, tcpdump) for tests."""

from __future__ import annotations

import select
import signal
import subprocess
import time
from contextlib import contextmanager


@contextmanager
def capturing(ns: str, ifaces: list[str], path: str, tool: str = "dumpcap"):
    """Capture in namespace ``ns`` while the body runs; stopped (and flushed) at the end."""
    if tool == "dumpcap":
        argv = ["dumpcap", *sum((["-i", i] for i in ifaces), []), "-w", path]
        ready = b"Capturing on"
    else:
        argv = ["tcpdump", "-Z", "root", "--immediate-mode", "-i", ifaces[0], "-w", path, "-U"]   # -Z: write where root can
        ready = b"listening on"
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        seen = b""
        while ready not in seen and time.monotonic() < deadline and p.poll() is None:
            r, _, _ = select.select([p.stderr], [], [], 0.2)
            if r:
                seen += p.stderr.read1(4096)
        assert ready in seen, f"{tool} in {ns} did not start: {seen.decode(errors='replace')}"
        # both tools announce themselves a little before their socket sees packets
        time.sleep(1.0)
        yield
        time.sleep(0.5)   # let the last packets reach the file
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def capturing_all(specs: list[tuple[str, list[str], str]], tool: str = "dumpcap"):
    """Several captures at once: [(netns, interfaces, file), ...]."""
    from contextlib import ExitStack
    with ExitStack() as stack:
        for ns, ifaces, path in specs:
            stack.enter_context(capturing(ns, ifaces, path, tool))
        yield
