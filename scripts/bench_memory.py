"""Peak memory of `flowviz replay --json` on captures whose timestamps do not advance.

Journeys close when stream time moves on; a capture of simple packet blocks (no timestamps)
or a burst sharing one timestamp never moves it. --max-open bounds the open journeys then.
Prints the peak RSS of a replay of N distinct packets in three captures: spread over time,
all at one timestamp, and simple packet blocks.
"""

from __future__ import annotations

import argparse
import os
import resource
import struct
import subprocess
import sys
import tempfile


def frames(n: int):
    from flowviz.samples import tcp_frame
    base = tcp_frame("02:00:00:00:00:0a", "02:00:00:00:00:0b", "10.0.0.1", "10.0.0.2", 40000, 80)
    for i in range(n):   # distinct packets: another IP ID and TCP sequence each
        b = bytearray(base)
        struct.pack_into("!H", b, 18, i & 0xFFFF)
        struct.pack_into("!I", b, 38, i)
        yield bytes(b)


def write(path: str, n: int, kind: str) -> None:
    from flowviz.model import LINKTYPE_ETHERNET
    from flowviz.pcapfile import PcapNgWriter
    with open(path, "wb") as f:
        w = PcapNgWriter(f, app="bench-memory")
        idx = w.interface("c1/eth0", LINKTYPE_ETHERNET)
        for i, fr in enumerate(frames(n)):
            if kind == "spb":   # a simple packet block: original length and data, no timestamp
                body = struct.pack("<I", len(fr)) + fr + b"\0" * (-len(fr) % 4)
                f.write(struct.pack("<II", 3, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
            else:
                w.packet(idx, 1_000_000_000 + (i * 10_000_000 if kind == "spread" else 0), fr, direction="tx")


def peak_rss_mb(path: str, extra: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "flowviz", "replay", path, "--json", *extra], stdout=subprocess.DEVNULL,
                   check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024   # ru_maxrss is in kB; the children's maximum so far


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=400_000)
    args = ap.parse_args()
    print(f"peak RSS of `flowviz replay --json`, {args.packets:,} distinct packets (each case in a fresh process):")
    with tempfile.TemporaryDirectory() as d:
        for kind, what, extra in (("spread", "spread over time (10 ms apart)", []),
                                  ("same", "all at one timestamp", []),
                                  ("same", "one timestamp, --proto icmp (none match)", ["--proto", "icmp"]),
                                  ("same", "one timestamp, --dport 9 (none match)", ["--dport", "9"]),
                                  ("spb", "simple packet blocks (no timestamps)", [])):
            path = os.path.join(d, f"{kind}.pcapng")
            if not os.path.exists(path):
                write(path, args.packets, kind)
            # a fresh interpreter per case, so one case's peak is not another's
            out = subprocess.run([sys.executable, __file__, "--measure", path, *extra], capture_output=True,
                                 text=True)
            print(f"  {what:<40} {out.stdout.strip()} MB  ({os.path.getsize(path) / 1e6:.1f} MB file)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--measure":
        print(f"{peak_rss_mb(sys.argv[2], sys.argv[3:]):.0f}")
        sys.exit(0)
    sys.exit(main())
