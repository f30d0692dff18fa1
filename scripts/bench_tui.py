"""How fast the TUI answers keys while sightings pour in.

Runs the app headless (Textual's test driver) on a synthetic source offering RATE sightings/s
for SECONDS, presses keys the way the terminal driver delivers them at intervals, and prints how
long each took to act on, with how many packets the app held, and what the pipeline kept up with.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time


def _gc_pauses() -> list:
    """Each collection's length in seconds, appended as they happen (any thread: each holds the GIL)."""
    out, began = [], [0.0]

    def note(phase, info):
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            out.append(time.perf_counter() - began[0])
    gc.callbacks.append(note)
    return out


async def run(rate: int, seconds: float) -> None:
    from textual import events

    from flowviz.correlate import Correlator
    from flowviz.pipeline import tune_gc
    from flowviz.sources.synthetic import SyntheticSource
    from flowviz.tui import create_app
    from flowviz.tui.feed import UI_TURN_S

    tune_gc()   # as the CLI does
    pauses = _gc_pauses()
    src = SyntheticSource(rate, seconds)
    app = create_app(src, Correlator(window_ns=200_000_000), autoplay=True)

    waits = []
    async with app.run_test(size=(170, 50)) as pilot:
        await pilot.pause(2.0)
        t_end = time.monotonic() + seconds - 2.5
        while time.monotonic() < t_end:
            before = app.speed
            key, char = ("plus", "+") if app.speed < 16 else ("minus", "-")
            t0 = time.monotonic()
            app.post_message(events.Key(key, char))
            while app.speed == before and time.monotonic() - t0 < 30:
                await pilot.pause(0.005)
            waits.append((time.monotonic() - t0, len(app.journeys)))
            await pilot.pause(0.5)
    ms = sorted(w * 1000 for w, _ in waits)
    unread = src.offered - src.taken - src.lost
    print(f"synthetic load: {src.offered:,} sightings offered in {seconds:g} s ({src.offered / seconds:,.0f}/s); "
          f"correlated {src.taken:,} ({src.taken / seconds:,.0f}/s), dropped {src.lost:,} (buffer full), "
          f"{unread:,} still buffered at the end")
    print(f"the app listed {app.feeder.delivered - app.unlisted - len(app.feeder.outbox):,} packets and counted "
          f"{app.unlisted:,} that came too fast to list")
    from flowviz.gcuntrack import BUILT
    print(f"garbage collection: {len(pauses)} collections, longest {max(pauses, default=0) * 1000:.0f} ms, "
          f"{sum(pauses) * 1000:,.0f} ms in all (finished records untracked: {'yes' if BUILT else 'no, pure Python'})")
    print(f"key answered: {len(ms)} presses, median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms, "
          f"packets held up to {max(n for _, n in waits):,}")
    print(f"the feeder left the UI thread the GIL for {app.feeder.turns:,} turns of {UI_TURN_S * 1000:g} ms "
          f"(its heartbeat was late)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    asyncio.run(run(args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
