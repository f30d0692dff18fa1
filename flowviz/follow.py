"""``flowviz follow``: the live source through the correlator to an output.

Runs until --count journeys, --duration seconds, ^C or SIGTERM; in every case
the programs are detached, the recording closed, the journeys still open
written out, and lost sightings reported.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Optional

from .correlate import Correlator
from .correlate.journeys import DEFAULT_MAX_OPEN
from .filter import FlowFilter
from .sanitize import safe

LIVE_WINDOW_NS = 500_000_000   # a journey is done 0.5 s after its last sighting
LOST_REPORT_EVERY_S = 1.0
#: following everything (no filter, no --netns) uses at most this share of one CPU unless --cpu says
#: otherwise. Every packet of the host is then a flow of its own: on a busy host userspace cannot take
#: them all (a TCP transfer offers ~500,000 sightings/s), and unbudgeted it took a whole core and cost
#: a third of the transfer's throughput (scripts/bench-live). Past the share, new packets are shed
#: whole in the kernel, and counted; a packet followed is followed whole. With a filter the user asked
#: for those flows, so no default: a budget would make a followed flow that outruns it lose sightings.
ALL_CPU_PERCENT = 10.0


def cpu_share(asked: Optional[float], flt: FlowFilter, netns: Optional[str]) -> tuple[Optional[float], bool]:
    """(the share of one CPU following may use, or None for as much as it takes; whether that is the
    default rather than asked for). ``asked``: --cpu PERCENT; 100 lifts the budget."""
    default = asked is None and flt.empty and netns is None
    percent = ALL_CPU_PERCENT if default else asked
    if percent is None or percent >= 100:
        return None, False
    return percent / 100, default


def run_follow(args, flt: FlowFilter, mode: str) -> int:
    from .sources.kernel import tracefs
    from .sources.live import build_cflags, final_c
    if args.ebpf:
        print(final_c(build_cflags(flt, None, tracefs(), args.sample), flt))
        return 0
    recorder = None
    if args.write:   # made first: a bad path fails before anything is attached
        from .render.pcapng import PcapngRecorder
        recorder = PcapngRecorder(args.write)
    try:
        drawn = pictures(args)
    except BaseException:
        if recorder is not None:
            recorder.discard()
        raise
    sinks = ([recorder] if recorder is not None else []) + drawn
    attached = False
    try:
        share, default = cpu_share(args.cpu, flt, args.netns)
        with live(flt, netns=args.netns, max_open=args.max_open, sample=args.sample, cpu=share,
                  cpu_default=default, untrack=keeps_journeys(mode, drawn)) as (source, topo, correlator):
            attached = True
            if recorder is not None:
                recorder.describe = topo.describe
            if mode == "tui":
                from .tui import run_app
                run_app(source, correlator, flt, sinks=sinks, count=args.count, duration=args.duration,
                        follow_latest=True)
                return _report_lost(source)
            return _plain(source, correlator, mode, sinks, args.count, args.duration)
    finally:
        if recorder is not None:
            if recorder.hops == 0:   # nothing recorded (also on errors): no header-only file left behind
                recorder.discard()
                if attached and sys.exc_info()[0] is None:   # an error says enough on its own
                    print(f"flowviz: nothing was followed, so {safe(recorder.path)} was not written", file=sys.stderr)
            else:
                recorder.close()
        close_pictures(drawn)


def keeps_journeys(mode: str, drawn: list) -> bool:
    """Whether journeys stay after they are handed on (the TUI lists them, pictures are drawn at the
    end): only then is taking them out of the garbage collector's lists worth its cost (the
    correlator's ``untrack``); written and dropped, they are not."""
    return mode == "tui" or bool(drawn)


@contextmanager
def live(flt: FlowFilter, *, netns=None, max_open: int = DEFAULT_MAX_OPEN, sample: int = 1,
         cpu: Optional[float] = None, cpu_default: bool = False, untrack: bool = True):
    """The live source (attached), the topology naming its namespaces and a correlator for them, as
    follow uses them; detached and closed afterwards, whatever happens."""
    from .sources.live import LiveSource
    from .topology.live import LiveTopology
    source = LiveSource(flt, netns=netns, sample=sample, cpu=cpu, cpu_default=cpu_default)
    topo = None
    try:
        topo = LiveTopology(source.names)
        yield source, topo, Correlator(flt=flt, window_ns=LIVE_WINDOW_NS, topology=topo, max_open=max_open,
                                       untrack=untrack)
    finally:
        source.close()
        if topo is not None:
            topo.close()


def pictures(args) -> list:
    """The --svg and --html writers asked for (each file made now, so a bad path fails first)."""
    from .render.html import journeys_html
    from .render.svg import PictureWriter, journeys_svg
    out = []
    try:
        for path, render, option in ((args.svg, journeys_svg, "--svg"), (args.html, journeys_html, "--html")):
            if path:
                out.append(PictureWriter(path, render=render, option=option))
    except BaseException:
        for w in out:
            w.discard()
        raise
    return out


def close_pictures(writers) -> None:
    """Write the pictures; say so when there was no journey to draw (and no file is left)."""
    for w in writers:
        w.close()
        if not w.written and sys.exc_info()[0] is None:
            print(f"flowviz: no journey to draw, so {safe(w.path)} was not written", file=sys.stderr)


def _plain(source, correlator: Correlator, mode: str, extra_sinks, count, duration) -> int:
    from .pipeline import Pipeline
    from .render.jsonl import JsonLinesWriter
    from .render.text import TextWriter
    out = JsonLinesWriter(sys.stdout) if mode == "json" else TextWriter(sys.stdout)
    for note in source.notices:
        print(f"flowviz: {note}", file=sys.stderr)
    kept = " (the compiled program kept from an earlier start)" if source.compiled == "cache" else ""
    sampled = f", one in {source.sample} new flows" if source.sample > 1 else ""
    if source.budget is not None:
        sampled += f", within {source.budget.share * 100:g}% of a CPU"
        if source.budget.default:
            sampled += " (the default without a filter; --cpu 100 lifts it)"
    ring = "through its mappings" if source.reader == "mapped" else "through libbpf"
    print(f"flowviz: following {source.filter.describe()}{sampled} on {source.tracepoints} tracepoints "
          f"{', '.join(source.attached)}{kept}; the ring buffer read {ring} (^C to stop)",
          file=sys.stderr, flush=True)
    lost_seen = 0

    def report_lost() -> None:
        nonlocal lost_seen
        lost = source.lost
        if lost > lost_seen:
            print(f"flowviz: {lost - lost_seen} sightings lost (ring buffer full): the journeys that may miss "
                  "them are marked incomplete", file=sys.stderr)
            lost_seen = lost

    tally = Incomplete()
    sinks = [out, tally, *extra_sinks]
    pipeline = Pipeline(source, correlator, sinks, count=count, duration=duration, tick=report_lost,
                        tick_s=LOST_REPORT_EVERY_S)
    try:
        with _stop_on_signals(pipeline):
            pipeline.run(after_batch=sys.stdout.flush)   # shown as they finish (stdout may be a pipe)
    finally:
        source.close()
        if mode == "json":   # the last line: what the whole follow saw and lost
            shed, sampled_out = source.refused
            out.out.write(f'{{"type": "summary", "journeys": {pipeline.taken}, "incomplete": {tally.count}, '
                          f'"lost": {source.lost}, "shed": {shed}, "sampled_out": {sampled_out}, '
                          f'"sightings": {source.delivered}, "compact": {source.compact}}}\n')
        out.close()
    if tally.count:
        print(f"flowviz: {tally.count} of {pipeline.taken} journeys are marked incomplete", file=sys.stderr)
    return _report_lost(source)


class Incomplete:
    """A sink: how many journeys are marked incomplete (the pipeline counts them all)."""

    def __init__(self):
        self.count = 0

    def journey(self, j) -> None:
        self.count += j.incomplete


@contextmanager
def _stop_on_signals(pipeline):
    """^C and SIGTERM ask the pipeline to stop instead of raising: raised inside bcc's ring-buffer
    callback an exception would be swallowed by ctypes and the follow would never end."""
    def handler(signum, frame):
        pipeline.stop()
    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _report_lost(source) -> int:
    """The end's account of what was not shown: sightings lost, flows shed, flows sampled out."""
    lost = source.lost
    shed, sampled_out = source.refused
    if lost:
        print(f"flowviz: {lost} sightings were lost in all (ring buffer full)", file=sys.stderr)
    if shed:
        print(f"flowviz: {shed} new flows were not followed (shed while the ring buffer was past half full); "
              "the flows followed kept every sighting", file=sys.stderr)
    if sampled_out:
        print(f"flowviz: {sampled_out} new flows were left out by --sample {source.sample}", file=sys.stderr)
    if source.budget is not None and source.budget.waited >= 0.01:
        percent = f"{source.budget.share * 100:g}%"
        within = f"{percent} of a CPU (the default without a filter)" if source.budget.default \
            else f"--cpu {percent}"
        print(f"flowviz: waited {source.budget.waited:.1f} s in all to stay within {within}; --cpu 100 lifts it",
              file=sys.stderr)
    return 0

