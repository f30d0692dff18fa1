"""Random mutations of the seeds through tests/fuzz_target.run for a bounded time; failures join the corpus."""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import fuzz_target  # noqa: E402


def _where(e: BaseException) -> str:
    """The first exception of the chain (what raised first: a StopIteration under a RuntimeError) and the
    line that raised it."""
    while (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__
    frame = traceback.extract_tb(e.__traceback__)[-1]
    return f"{type(e).__name__}: {str(e)[:160]!r} at {os.path.relpath(frame.filename)}:{frame.lineno}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("seconds", nargs="?", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    args = ap.parse_args()
    from flowviz.pipeline import tune_gc
    tune_gc()
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    rng = random.Random(seed)
    seeds = fuzz_target.seeds()
    end = time.monotonic() + args.seconds
    runs = failures = 0
    found: dict[str, str] = {}   # each distinct failure (exception and place) once
    names = fuzz_target.seed_names()
    while time.monotonic() < end:
        which = rng.randrange(len(seeds))
        base = seeds[which]
        edits = [(rng.randrange(len(base) or 1), rng.randrange(4), rng.randrange(256))
                 for _ in range(rng.randint(1, 6))]
        data = fuzz_target.mutate(base, edits)
        runs += 1
        try:
            fuzz_target.run(data)
        except Exception as e:
            failures += 1
            name = f"found-{hashlib.sha256(data).hexdigest()[:12]}.pcapng"
            with open(os.path.join(fuzz_target.CORPUS, name), "wb") as f:
                f.write(data)
            print(f"FAILED: tests/fuzz-corpus/{name}\n{traceback.format_exc()}", file=sys.stderr)
            # one line that makes the input again from the seeds (the file stays on the machine that ran)
            found.setdefault(_where(e), f"input = mutate(seeds()[{which}] ({names[which]}), {edits})")
    for where, how in list(found.items())[:10]:
        print(f"fuzz found: {where}; {how}")
    print(f"fuzz: {runs:,} inputs in {args.seconds:g} s (random seed {seed}), {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
