"""Replay speed: hops/s of `flowviz replay` next to `tshark -T fields -e frame.number`.

Makes a capture of N hops (default 1,000,000) by repeating the swarm ingress
request/reply pair with new IP IDs, ports and sequence numbers patched into the
template bytes, then times, in one run on the same file:

  tshark -r FILE -T fields -e frame.number          (the reference)
  flowviz replay FILE --json > /dev/null            (the whole job; again with FLOWVIZ_PURE_PYTHON=1)
  and, in process, the stages: read, read+decode, read+decode+correlate,
  and scapy's RawPcapNgReader reading the same file (why the reader is ours).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def make_capture(path: str, hops: int) -> None:
    from flowviz import samples
    from flowviz.model import LINKTYPE_ETHERNET
    from flowviz.pcapfile import PcapNgWriter
    from flowviz.pcapfile import format_meta

    pair = len(samples.swarm_ingress()[0]) * 2
    n = 0
    with open(path, "wb") as f:
        w = PcapNgWriter(f, app="flowviz bench")
        ifs: dict = {}
        ts = samples.BASE_NS
        for sightings in samples.swarm_variants(hops // pair + 1):
            for s in sightings:
                if n >= hops:
                    return
                key = (s.dev.netns, s.dev.name)
                if key not in ifs:
                    ifs[key] = w.interface(f"{s.dev.netns}/{s.dev.name}", LINKTYPE_ETHERNET, s.dev.description())
                comment = format_meta(mark=s.mark) if s.mark is not None else None
                w.packet(ifs[key], ts, s.frame, direction=s.dir, comment=comment)
                ts += samples.HOP_NS
                n += 1
            ts += 2_000_000   # 2 ms between pairs


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hops", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="FILE", help="write the capture here and keep it")
    args = ap.parse_args()

    from flowviz.correlate import Correlator
    from flowviz.decode import decode
    from flowviz.pipeline import tune_gc
    from flowviz.sources.replay import ReplaySource

    tune_gc()   # the stages run as the CLI runs them

    tmp = None
    path = args.keep
    if path is None:
        tmp = tempfile.NamedTemporaryFile(suffix=".pcapng", delete=False)
        path = tmp.name
    try:
        t, _ = timed(lambda: make_capture(path, args.hops))
        size = os.path.getsize(path) / 1e6
        print(f"capture: {args.hops:,} hops, {size:.0f} MB, written in {t:.1f} s")

        tshark_t, r = timed(lambda: subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.number"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if r.returncode != 0:
            print("tshark failed", file=sys.stderr)
            return 1
        def replay(pure: str):
            env = dict(os.environ, FLOWVIZ_PURE_PYTHON=pure)
            return subprocess.run([sys.executable, "-m", "flowviz", "replay", path, "--json"],
                                  stdout=subprocess.DEVNULL, env=env)

        fv_t, r = timed(lambda: replay("0"))
        pure_t, r2 = timed(lambda: replay("1"))
        if r.returncode != 0 or r2.returncode != 0:
            print("flowviz replay failed", file=sys.stderr)
            return 1

        def read_only():
            return sum(1 for _ in ReplaySource([path]).events())

        def read_decode():
            n = 0
            for ev in ReplaySource([path]).events():
                decode(ev.data, ev.linktype)
                n += 1
            return n

        def correlate():
            return sum(1 for _ in Correlator().run(ReplaySource([path]).events()))

        def scapy_read():
            from scapy.utils import RawPcapNgReader
            with RawPcapNgReader(path) as r:
                return sum(1 for _ in r)

        stages = [("read (flowviz reader → HopEvent)", read_only), ("read + decode", read_decode),
                  ("read + decode + correlate", correlate), ("scapy RawPcapNgReader, read only", scapy_read)]
        h = args.hops
        from flowviz import native
        used = native.in_use().values()
        print(f"compiled hot path (flowviz/native.py): {'in use' if all(used) else 'NOT in use'} "
              f"(the stages below run {'compiled' if all(used) else 'as Python'})")
        print(f"{'':40} {'seconds':>8} {'hops/s':>10} {'× tshark':>9}")
        rows = [("tshark -T fields -e frame.number", tshark_t), ("flowviz replay --json (whole job)", fv_t),
                ("  the same, FLOWVIZ_PURE_PYTHON=1", pure_t)]
        for name, fn in stages:
            t, _ = timed(fn)
            rows.append((name, t))
        for name, t in rows:
            print(f"{name:40} {t:8.2f} {h / t:10,.0f} {tshark_t / t:9.2f}")
        took = dict(rows)
        corr = took["read + decode + correlate"] - took["read (flowviz reader → HopEvent)"]
        print(f"correlate stage alone (it decodes too; the read subtracted): {h / corr:,.0f} hops/s")
        print(f"ratio flowviz replay / tshark (hops/s): {tshark_t / fv_t:.2f}")
    finally:
        if tmp is not None:
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
