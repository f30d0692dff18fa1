"""Running `flowviz follow` in the background for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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

    Its output is read all along (a thread per pipe): a follower whose stdout pipe filled up would
    block on a write and stop reading its ring buffer, which a test would take for the tracer's fault.
    Under software emulation (the stock-kernel guest) compiling the tracer alone can take a minute
    on a busy host: FLOWVIZ_ATTACH_TIMEOUT_S (scripts/vm-guest sets it) raises the wait for attach."""
    timeout = max(timeout, float(os.environ.get("FLOWVIZ_ATTACH_TIMEOUT_S", "0")))
    p = subprocess.Popen([sys.executable, "-m", "flowviz", "follow", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    f = Following(p)
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=_drain, args=(pipe, into), daemon=True)
               for pipe, into in ((p.stdout, out), (p.stderr, err))]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + timeout
        while b"following" not in b"".join(err) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)   # the reader may still hold the line that said so
        said = b"".join(err).decode(errors="replace")
        assert "following" in said, f"follow did not start: {said}"
        yield f
        if p.poll() is None and stop is not None:
            p.send_signal(stop)
        p.wait(timeout=timeout)
        for r in readers:
            r.join(timeout)
        f.stdout = b"".join(out).decode()
        f.stderr = b"".join(err).decode(errors="replace")
        f.returncode = p.returncode
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _drain(pipe, into: list[bytes]) -> None:
    for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):
        into.append(chunk)


def fv_programs() -> list[str]:
    """BPF programs named fv_* loaded right now."""
    out = subprocess.run(["bpftool", "prog", "list"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if " name fv_" in l]
