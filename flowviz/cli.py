"""The ``flowviz`` command: a thin shell over the package.

Heavy imports (bcc, scapy, textual, pyroute2) happen inside the commands that
need them, so ``--help`` and ``replay`` start fast and work without root.
Every :class:`~flowviz.errors.FlowvizError` ends here as one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from typing import Optional, Sequence

from .errors import BadInput, FlowvizError, NeedRoot
from .sanitize import safe   # errors name paths and arguments, which can come from hostile file names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage)
        self.exit(2, f"{self.prog}: {safe(message)} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < v < 65536:
        raise argparse.ArgumentTypeError(f"{v} is not a port (1..65535)")
    return v


MAX_DURATION_S = 366 * 24 * 3600   # a year: longer is a typo, not a plan


def _positive(kind, *, low=None, high=None):
    """A number above 0 (and within [low, high] when given), never nan or infinite."""
    def parse(text: str):
        try:
            v = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        if low is not None and v < low:
            raise argparse.ArgumentTypeError(f"{text} is less than {low:g}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"{text} is more than {high:g}")
        return v
    return parse


def _filter_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filter (outer or VXLAN-inner headers; replies of matched flows are kept)")
    g.add_argument("--dport", type=_port, help="destination port")
    g.add_argument("--sport", type=_port, help="source port")
    g.add_argument("--port", type=_port, help="either port")
    g.add_argument("--host", help="either address")
    g.add_argument("--proto", choices=("tcp", "udp", "icmp"))


def _output_args(p: argparse.ArgumentParser) -> None:
    from .correlate.journeys import DEFAULT_MAX_OPEN   # light: the correlator imports no heavy library
    p.add_argument("--max-open", type=_positive(int, high=10_000_000), default=DEFAULT_MAX_OPEN, metavar="N",
                   help=f"journeys kept open at once (default {DEFAULT_MAX_OPEN}); past it the least recently "
                        "seen is finished early and marked evicted")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="JSON Lines: one object per hop and per journey")
    g.add_argument("--text", action="store_true", help="a text timeline per journey")
    p.add_argument("--svg", metavar="OUT.svg",
                   help="also draw the first journey (and its reply) as SVG for slides; never overwrites a file")
    p.add_argument("--html", metavar="OUT.html",
                   help="the same picture as a self-contained page where the arrow keys step the packet along")


def _docker_host(text: str) -> str:
    if not text.startswith(("unix:///", "tcp://")) or len(text) <= len("tcp://"):
        raise argparse.ArgumentTypeError(f"{text!r}: give unix:///path/to/docker.sock or tcp://host:port")
    return text


def _docker_args(p: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    # after the command too (flowviz topo --docker-host ...); SUPPRESS keeps a value given before it
    p.add_argument("--docker-host", type=_docker_host, default=default, metavar="URL",
                   help="the Docker engine to ask for names (default: $DOCKER_HOST, else "
                        "unix:///var/run/docker.sock)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flowviz", description="Follow one packet through a container host.")
    _docker_args(p, default=None)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("replay", help="journeys from pcap/pcapng captures")
    r.add_argument("files", nargs="+", metavar="FILE",
                   help="pcap or pcapng files; - reads standard input as it arrives "
                        "(tcpdump -U -w - | flowviz replay -)")
    _filter_args(r)
    r.add_argument("-f", "--filter", dest="expr", metavar="EXPR",
                   help="a tcpdump filter expression ('udp port 4789', 'net 10.0.0.0/8'): journeys with a sighting "
                        "it matches, at the outer or the VXLAN-inner level; combines with the flags")
    _output_args(r)
    r.set_defaults(func=cmd_replay)

    f = sub.add_parser("follow", help="trace packets live with eBPF (root)")
    f.add_argument("expr_words", nargs="*", metavar="EXPR",
                   help="a tcpdump filter expression, run in the kernel on the outer and VXLAN-inner frame "
                        "('tcp port 20229 and host 10.255.0.33'); combines with the flags")
    _filter_args(f)
    f.add_argument("--netns", help="only this namespace: a name, a PID, a path, or inode:N")
    _output_args(f)
    f.add_argument("--write", metavar="FILE.pcapng", help="also record the followed hops as pcapng")
    f.add_argument("--count", type=_positive(int), help="stop after this many journeys")
    f.add_argument("--duration", type=_positive(float, high=MAX_DURATION_S), help="stop after this many seconds")
    f.add_argument("--sample", type=_positive(int, high=1_000_000), default=1, metavar="N",
                   help="follow one in N new flows (chosen in the kernel; the others are counted)")
    f.add_argument("--cpu", type=_positive(float, high=100), metavar="PERCENT",
                   help="use at most this share of one CPU: past it the kernel sheds new flows (counted), so "
                        "a busy host keeps its CPU; the flows followed stay whole. Following everything (no "
                        "filter) the default is 10; 100 lifts the limit")
    f.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)  # print the final C and exit
    _docker_args(f)
    f.set_defaults(func=cmd_follow)

    d = sub.add_parser("doctor", help="what this machine offers for live tracing, and how to fix what is missing")
    _docker_args(d)
    d.set_defaults(func=cmd_doctor)

    t = sub.add_parser("topo", help="namespaces, links, peers, tunnels, NAT rules and Docker names")
    t.add_argument("--json", action="store_true")
    t.add_argument("--path", action="store_true", help="the path a packet to --dport would take")
    t.add_argument("--dport", type=_port)
    t.add_argument("--to", metavar="ADDR", help="destination address for --path")
    t.add_argument("--from", dest="src", metavar="NETNS", help="namespace the packet starts in for --path")
    _docker_args(t)
    t.set_defaults(func=cmd_topo)

    _teach_parser(sub)
    _lab_parser(sub)
    return p


def _teach_parser(sub) -> None:
    te = sub.add_parser("teach", help="guided lessons on overlay networking, on the live lab or the bundled captures")
    te.add_argument("lesson", nargs="?", metavar="LESSON",
                    help="a lesson's name (without one: the list) or a lesson file (.toml)")
    src = te.add_mutually_exclusive_group()
    src.add_argument("--live", action="store_true", help="follow real packets through the lab, or fail saying why")
    src.add_argument("--capture", action="store_true", help="read the bundled captures, even where live works")
    te.add_argument("--text", action="store_true", help="print the lesson with its answers (a handout)")
    te.set_defaults(func=cmd_teach)


def _lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="build the reference topologies from network namespaces (root)")
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    lsub.required = True
    from .reference import SCENARIOS
    scen = (*SCENARIOS, "all")
    up = lsub.add_parser("up", help="build a scenario (twice is harmless)")
    up.add_argument("--scenario", choices=scen, default="swarm-ingress")
    up.set_defaults(func=cmd_lab_up)
    down = lsub.add_parser("down", help="remove everything the lab made")
    down.set_defaults(func=cmd_lab_down)
    st = lsub.add_parser("status", help="what exists, and whether the reference request is answered")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_lab_status)
    tr = lsub.add_parser("traffic", help="send real requests through a scenario's path")
    tr.add_argument("--scenario", choices=scen[:-1], default="swarm-ingress")
    tr.add_argument("--count", type=_positive(int, high=1_000_000), default=10)
    tr.add_argument("--rate", type=_positive(float, low=0.01, high=100_000), default=10.0,
                    help="requests per second (0.01 to 100000)")
    tr.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    tr.add_argument("--size", type=_positive(int, low=16, high=65_000), default=None, metavar="BYTES",
                    help="payload bytes per request (default: a short line); 1472 over UDP fills a 1500-byte packet")
    tr.set_defaults(func=cmd_lab_traffic)
    from .lab.faults import FAULTS
    br = lsub.add_parser("break", help="make one controlled fault in the swarm ingress path, to follow a packet into it")
    br.add_argument("what", choices=tuple(FAULTS), metavar="WHAT",
                    help="; ".join(f"{k}: {f.what}" for k, f in FAULTS.items()))
    br.set_defaults(func=cmd_lab_break)
    fx = lsub.add_parser("fix", help="undo a fault exactly (all: every one)")
    fx.add_argument("what", choices=(*FAULTS, "all"), metavar="WHAT")
    fx.set_defaults(func=cmd_lab_fix)


# --- commands ------------------------------------------------------------------

def _filter(args):
    from .filter import FlowFilter
    expr = None
    text = getattr(args, "expr", None)
    if text is None and getattr(args, "expr_words", None):
        text = " ".join(args.expr_words)   # follow tcp port 80, as tcpdump takes it
    if text is not None:
        from .pcapexpr import Expression
        expr = Expression(text)
    return FlowFilter(dport=args.dport, sport=args.sport, port=getattr(args, "port", None),
                      host=args.host, proto=args.proto, expr=expr)


def _mode(args, keys_from_tty: bool = False) -> str:
    """``keys_from_tty``: standard input carries data (``replay -``), so the TUI would read keys
    from /dev/tty instead."""
    if args.json:
        return "json"
    if args.text:
        return "text"
    if sys.stdout.isatty() and (_tty_usable() if keys_from_tty else sys.stdin.isatty()):
        return "tui"
    return "text"


def _tty_usable() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
        return True
    except OSError:
        return False


def _stdin_for_data() -> "object":
    """Standard input as the capture stream, on a descriptor of its own; file descriptor 0 becomes
    the terminal, where the TUI reads keys (as ``less`` does)."""
    from .pcapfile import READ_BUFFER
    data = os.fdopen(os.dup(0), "rb", buffering=READ_BUFFER)
    tty = os.open("/dev/tty", os.O_RDWR)
    os.dup2(tty, 0)
    os.close(tty)
    return data


def _writer(mode: str):
    if mode == "json":
        from .render.jsonl import JsonLinesWriter
        return JsonLinesWriter(sys.stdout)
    from .render.text import TextWriter
    return TextWriter(sys.stdout)


def _print_plain(source, correlator, mode: str, sinks=()) -> None:
    from .pipeline import Pipeline
    w = _writer(mode)
    try:
        Pipeline(source, correlator, [w, *sinks]).run(after_batch=sys.stdout.flush)   # a reader may be waiting
    finally:
        w.close()


def _report_problems(source) -> int:
    for e in source.problems:
        how = "; the packets before it are reported" if getattr(e, "partial", False) else ""
        print(f"flowviz: {safe(str(e))}{how}", file=sys.stderr)
    return 2 if source.problems else 0


def cmd_replay(args) -> int:
    from .correlate import Correlator
    from .sources.replay import STDIN, ReplaySource
    flt = _filter(args)
    from_stdin = STDIN in args.files
    if args.files.count(STDIN) > 1:
        raise BadInput("standard input (-) can be read only once")
    mode = _mode(args, keys_from_tty=from_stdin)
    from .follow import close_pictures, keeps_journeys, pictures
    sinks = pictures(args)   # made first: a bad path fails before anything is read
    try:
        stdin = _stdin_for_data() if from_stdin and mode == "tui" else None
        source = ReplaySource(args.files, stdin=stdin)
        correlator = Correlator(flt=flt, topology=source.topology, max_open=args.max_open,
                                untrack=keeps_journeys(mode, sinks))
        if mode == "tui":
            from .tui import run_app
            run_app(source, correlator, flt, follow_latest=False, sinks=sinks)
        else:
            _print_plain(source, correlator, mode, sinks)
    finally:
        close_pictures(sinks)
    return _report_problems(source)


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NeedRoot(f"{what} needs root (try: sudo flowviz ...)")


def cmd_follow(args) -> int:
    from .follow import run_follow
    return run_follow(args, _filter(args), _mode(args))


def cmd_teach(args) -> int:
    from .teach import run_teach
    tui = not args.text and sys.stdout.isatty() and sys.stdin.isatty()
    return run_teach(args, "tui" if tui else "text")


def cmd_doctor(args) -> int:
    from .sources.doctor import run_doctor
    return run_doctor()


def cmd_topo(args) -> int:
    from .topology.cli import run_topo
    return run_topo(args)


def cmd_lab_up(args) -> int:
    need_root("flowviz lab up")
    from .lab import up
    return up(args.scenario)


def cmd_lab_down(args) -> int:
    need_root("flowviz lab down")
    from .lab import down
    return down()


def cmd_lab_status(args) -> int:
    need_root("flowviz lab status")
    from .lab import status
    return status(as_json=args.json)


def cmd_lab_traffic(args) -> int:
    need_root("flowviz lab traffic")
    from .lab.traffic import run_traffic
    return run_traffic(args.scenario, count=args.count, rate=args.rate, proto=args.proto, size=args.size)


def cmd_lab_break(args) -> int:
    need_root("flowviz lab break")
    from .lab.faults import break_fault
    return break_fault(args.what)


def cmd_lab_fix(args) -> int:
    need_root("flowviz lab fix")
    from .lab.faults import fix_fault
    return fix_fault(args.what)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.docker_host:
        os.environ["DOCKER_HOST"] = args.docker_host   # how the Docker SDK (and any docker CLI we run) finds it
    from .pipeline import tune_gc
    tune_gc()
    # SIGTERM ends the run like ^C does, so cleanups (BPF detach, lab teardown) run. ^C too when
    # started with SIGINT ignored, as a non-interactive shell starts a background job (`flowviz follow
    # ... &` in a script): Python then leaves it ignored, and a SIGINT before follow's own handler was
    # in place (while attaching) was lost, and the follow never ended (scripts/bench-live saw it).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return args.func(args) or 0
    except FlowvizError as e:
        _flush_quietly()
        print(f"flowviz: {safe(str(e))}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (| head): nothing more to say, and say nothing at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an exception so ``finally`` blocks run."""


def _terminate(signum, frame):
    raise Terminated()


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass


if __name__ == "__main__":
    sys.exit(main())
