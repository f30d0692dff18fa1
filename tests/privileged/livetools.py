"""Running `flowviz follow` in the background for tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager


class Following:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.stdout = ""
        self.stderr = ""
        self.returncode = None

    def objects(self) -> list[dict]:
        return [json.loads(l) for l in self.stdout.splitlines() if l.strip()]

    def journeys(self) -> list[dict]:
        return [o for o in self.objects() if o["type"] == "journey"]

    def hops(self, packet: int) -> list[dict]:
        return [o for o in self.objects() if o["type"] == "hop" and o["packet"] == packet]


@contextmanager
def following(*args: str, stop=signal.SIGINT, timeout: float = 60):
    """`flowviz follow ARGS` from attach to exit; the body runs once it is attached.

    Under software emulation (the stock-kernel guest) compiling the tracer alone can take a minute
    on a busy host: FLOWVIZ_ATTACH_TIMEOUT_S (scripts/vm-guest sets it) raises the wait for attach."""
    timeout = max(timeout, float(os.environ.get("FLOWVIZ_ATTACH_TIMEOUT_S", "0")))
    p = subprocess.Popen([sys.executable, "-m", "flowviz", "follow", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    f = Following(p)
    err = b""
    try:
        deadline = time.monotonic() + timeout
        fd = p.stderr.fileno()
        while b"following" not in err and p.poll() is None and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                err += os.read(fd, 4096)   # raw reads: a buffered readline would hide lines from select
        assert b"following" in err, f"follow did not start: {err.decode(errors='replace')}"
        yield f
        if p.poll() is None and stop is not None:
            p.send_signal(stop)
        out, rest = p.communicate(timeout=timeout)
        f.stdout = out.decode()
        f.stderr = (err + rest).decode(errors="replace")
        f.returncode = p.returncode
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def fv_programs() -> list[str]:
    """BPF programs named fv_* loaded right now."""
    out = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if " name fv_" in l]
