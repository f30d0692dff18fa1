"""`flowviz replay` stays under its documented memory bound (README: 200 MB at the defaults) whatever
the capture's timestamps or packet sizes do. Peak RSS is read from the kernel (VmHWM)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowviz.samples import flood

BOUND_MB = 200


def _peak_mb(path: str) -> float:
    # a fresh interpreter that runs the replay and reports its own peak: VmHWM, which belongs to the
    # process's memory since exec (ru_maxrss would count the test runner's size, copied by fork)
    code = ("import sys, contextlib, os\n"
            "sys.argv = ['flowviz', 'replay', sys.argv[1], '--json']\n"
            "with open(os.devnull, 'w') as out, contextlib.redirect_stdout(out):\n"
            "    from flowviz.cli import main\n"
            "    rc = main(sys.argv[1:])\n"
            "assert rc == 0, rc\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n")
    r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip()) / 1024


@pytest.mark.parametrize("kind,n,payload", [
    ("spb", 400_000, 0),       # simple packet blocks: no timestamps at all
    ("same", 30_000, 9000),    # big packets, one timestamp: bounded by bytes held, not only by count
])
def test_replay_stays_under_the_documented_bound(tmp_path, kind, n, payload):
    path = str(tmp_path / f"{kind}.pcapng")
    flood(path, n, kind, payload=payload)
    assert _peak_mb(path) < BOUND_MB
