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
import subprocess
import sys
import tempfile


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
    from flowviz.samples import flood
    print(f"peak RSS of `flowviz replay --json`, {args.packets:,} distinct packets (each case in a fresh process):")
    with tempfile.TemporaryDirectory() as d:
        jumbo = max(1, args.packets // 16)
        for kind, n, payload, what, extra in (
                ("spread", args.packets, 0, "spread over time (10 ms apart)", []),
                ("same", args.packets, 0, "all at one timestamp", []),
                ("same", args.packets, 0, "one timestamp, --proto icmp (none match)", ["--proto", "icmp"]),
                ("same", args.packets, 0, "one timestamp, --dport 9 (none match)", ["--dport", "9"]),
                ("spb", args.packets, 0, "simple packet blocks (no timestamps)", []),
                ("same", jumbo, 9000, f"{jumbo:,} packets of 9 kB, one timestamp", [])):
            path = os.path.join(d, f"{kind}-{n}-{payload}.pcapng")
            if not os.path.exists(path):
                flood(path, n, kind, payload=payload)
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
