"""Live tracing cost and capacity, measured on the lab's swarm ingress path.

1. TCP throughput client → 192.168.21.192:20229 → task on node2 (the full path:
   DNAT, fwmark, IPVS emulation, SNAT, VXLAN) with flowviz detached, with
   programs that return at once attached at the same raw tracepoints (what
   attaching there costs at all: the floor), attached with a filter that
   matches nothing (--dport 9), with a tcpdump expression that matches nothing,
   evaluated in the kernel, and attached following every packet (no filter;
   within 10% of a CPU, its default there) with its output going to /dev/null,
   also with no budget (--cpu 100), and stopped once attached (SIGSTOP: the
   kernel's side alone, shedding). Rounds are
   interleaved and the median of each mode is compared to detached, as a
   ratio, so the noisy shared machine affects all modes alike. Then one more round
   of each attached mode with kernel.bpf_stats_enabled on: each program's calls and
   its own time per call (bpftool), a figure the machine's noise does not move;
   and the same while following 500 UDP requests/s, a load userspace keeps up with
   (where the kernel woke the follower for most records), with the follower's CPU time.
2. Sightings per second userspace takes without loss: UDP requests through the
   same path at rising rates while flowviz follows them (correlating and
   writing JSON to /dev/null); for each rate the delivered and lost counts and
   the flows the kernel shed. Twice: all requests from one socket (one flow:
   followed whole, so past capacity sightings are lost), and a new socket per
   request (a new flow each: past half the ring new flows are shed, nothing lost).
3. Attach to ready: from starting ``flowviz follow`` to its "following" line, with the
   program compiled by clang (FLOWVIZ_CACHE_DIR=off) and kept from an earlier start.

Run as root; brings the lab up (and down again) if it is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from flowviz.lab.scenarios import TARGETS
from flowviz.sources.live import TRACEPOINTS
from flowviz.netns import entered

SWARM = TARGETS["swarm-ingress"]


def throughput(seconds: float) -> float:
    """Bytes per second one TCP connection pushes through the path."""
    with entered(SWARM.netns):
        s = socket.socket()
    s.settimeout(10)
    s.connect((SWARM.addr, SWARM.port))
    s.sendall(b"BULK")
    chunk = b"\0" * (256 * 1024)
    sent, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    answer = s.recv(256)
    elapsed = time.perf_counter() - t0
    s.close()
    got = int(answer.rsplit(b" ", 1)[-1])
    if got != sent + 0:
        print(f"  (server counted {got} of {sent} bytes)", file=sys.stderr)
    return got / elapsed


ATTACH_S: dict[tuple[str, str], list[float]] = {}   #: (tracepoints, program) → seconds from start to "following"
#: what this benchmark printed before the live-cost work (issue #12), for comparison
BEFORE_SUSTAINED = 19_500
CACHE = {"compiled": "off"}   #: FLOWVIZ_CACHE_DIR per way of getting the program ("kept": a directory of the bench's)


def start_follow(*args: str, tracepoints: str = "auto", program: str = "kept") -> subprocess.Popen:
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "flowviz", "follow", "--json", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**os.environ, "FLOWVIZ_TRACEPOINTS": tracepoints, "FLOWVIZ_CACHE_DIR": CACHE[program]})
    err = b""
    while b"following" not in err:
        line = p.stderr.readline()
        if not line:
            raise SystemExit(f"flowviz follow did not start: {err.decode()}")
        err += line
    ATTACH_S.setdefault((tracepoints, program), []).append(time.perf_counter() - t0)
    return p


def stop_follow(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)


NOOP_C = "".join(f"int noop_{event}(void *ctx) {{ return 0; }}\n" for _, event, _, _ in TRACEPOINTS)


class NoopAttached:
    """Programs that return at once on the raw tracepoints flowviz attaches to: what attaching there
    costs at all, the floor under any tracer's figure."""

    def __init__(self):
        from bcc import BPF

        from flowviz.sources.kernel import use_shim_headers
        use_shim_headers()
        self.bpf = BPF(text=NOOP_C)
        for _, event, _, _ in TRACEPOINTS:
            self.bpf.attach_raw_tracepoint(tp=event, fn_name=f"noop_{event}")

    def close(self) -> None:
        self.bpf.cleanup()


def bench_throughput(rounds: int, seconds: float) -> None:
    # (name, follow's arguments (None: no follower), tracepoints, the follower stopped once attached)
    modes = [("detached", None, "", False), ("no-op programs on the same raw tracepoints (the floor)", None, "noop", False)]
    for tp in ("perf", "raw"):   # each attached mode on both kinds of tracepoint
        modes += [(f"{tp}: filter matches nothing (--dport 9)", ("--dport", "9"), tp, False),
                  (f"{tp}: expression matches nothing ('tcp port 9 or udp port 9')",
                   ("tcp", "port", "9", "or", "udp", "port", "9"), tp, False),
                  (f"{tp}: following every packet (within 10% of a CPU, the default)", (), tp, False)]
    modes.append(("raw: following every packet, no budget (--cpu 100)", ("--cpu", "100"), "raw", False))
    # the kernel's side alone: the ring fills, and from then on every new packet is shed
    modes.append(("raw: following every packet, the follower stopped (SIGSTOP)", (), "raw", True))
    results: dict[str, list[float]] = {m[0]: [] for m in modes}
    calls: dict[str, dict[str, list[int]]] = {m[0]: {} for m in modes}
    for _ in range(rounds):
        for name, args, tp, stopped in modes:
            p = start_follow(*args, tracepoints=tp) if args is not None else None
            noop = NoopAttached() if tp == "noop" else None
            if p is not None and stopped:
                p.send_signal(signal.SIGSTOP)
            try:
                results[name].append(throughput(seconds))
            finally:
                if p is not None:
                    if stopped:
                        p.send_signal(signal.SIGCONT)
                    stop_follow(p)
                if noop is not None:
                    noop.close()
    followers = [(name, args, tp) for name, args, tp, stopped in modes if args is not None and not stopped]
    with bpf_stats():   # a round of its own: the kernel's counting costs a clock read per call
        for name, args, tp in followers:
            p = start_follow(*args, tracepoints=tp)
            try:
                throughput(seconds)
                program_stats(calls[name])
            finally:
                stop_follow(p)
    base = statistics.median(results["detached"])
    print(f"TCP throughput through the full swarm ingress path ({rounds} rounds of {seconds:g} s, median):")
    for name, *_ in modes:
        med = statistics.median(results[name])
        print(f"  {name:68} {med * 8 / 1e9:7.2f} Gbit/s   ratio {med / base:5.2f}")
    if not any(calls.values()):
        return
    print("  the programs' own time per call, in one more round (kernel.bpf_stats_enabled; a program that"
          " returns at once shows ~30 ns here):")
    for name, _, _ in followers:
        print(f"    {name}: {per_call(calls[name])}")


@contextmanager
def bpf_stats():
    """The kernel counts each BPF program's calls and time while kernel.bpf_stats_enabled is 1
    (it costs a clock read per call); set as it was after."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    try:
        with open(path) as f:
            was = f.read().strip()
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        was = None
    try:
        yield
    finally:
        if was is not None:
            with open(path, "w") as f:
                f.write(was)


def program_stats(into: dict[str, list[int]]) -> None:
    """Add the fv_ programs' run counts and run time (the kernel counts while bpf_stats is on) to
    ``into``, by program name (each follow loads its programs anew, counting from 0)."""
    if shutil.which("bpftool") is None:
        return
    try:
        progs = json.loads(subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True,
                                          text=True, timeout=30).stdout or "[]")
    except (subprocess.SubprocessError, ValueError):
        return
    for prog in progs:
        name = prog.get("name", "")
        if name.startswith("fv_") and "run_cnt" in prog:
            calls_and_ns = into.setdefault(name, [0, 0])
            calls_and_ns[0] += prog["run_cnt"]
            calls_and_ns[1] += prog.get("run_time_ns", 0)


def per_call(calls: dict[str, list[int]]) -> str:
    """Each program's own time per call and its calls, as program_stats counted them."""
    return ", ".join(f"{prog} {ns // n} ns ({n:,})" for prog, (n, ns) in sorted(calls.items()) if n)


def bench_attach(starts: int) -> None:
    """Start to "following": with the program compiled by clang, and kept from an earlier start."""
    for tp in ("perf", "raw"):
        for program in ("compiled", "kept"):
            for _ in range(starts):
                stop_follow(start_follow("--dport", "9", tracepoints=tp, program=program))
    print(f"attach to ready (flowviz follow --dport 9 started {starts} times each):")
    for (tp, program), times in sorted(ATTACH_S.items()):
        print(f"  {tp} tracepoints, program {program:9} median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s")


SENDER = """
import socket, sys, time
from flowviz.netns import entered
rate, seconds, ns, addr, port = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
each = sys.argv[6] == "each"   # a socket (a new flow) per request, made in the namespace
with entered(ns):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    n, t0, payload = 0, time.perf_counter(), b"flowviz bench\\n"
    while True:
        now = time.perf_counter() - t0
        if now >= seconds:
            break
        due = int(now * rate)
        while n < due:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if each else s
            try:
                sock.sendto(payload, (addr, port))
            except (BlockingIOError, OSError):
                pass
            if each:
                sock.close()
            n += 1
print(n, time.perf_counter() - t0)
"""


def bench_following_cost(rate: int, seconds: float) -> None:
    """What following costs per sighting while userspace keeps up: `flowviz follow` following UDP
    requests at a steady rate, each program's own time per call (bpf_stats) and the follower's CPU
    time; figures the machine's noise moves little."""
    calls: dict[str, list[int]] = {}
    with bpf_stats():
        p = start_follow("--proto", "udp", "--dport", str(SWARM.port))
        try:
            before = _cpu_s(p.pid)
            sender = subprocess.run([sys.executable, "-c", SENDER, str(rate), str(seconds), SWARM.netns,
                                     SWARM.addr, str(SWARM.port), "one"], capture_output=True, text=True)
            time.sleep(0.5)   # the last requests' journeys
            used = _cpu_s(p.pid) - before
            program_stats(calls)
        finally:
            stop_follow(p)
    sent = int(sender.stdout.split()[0]) if sender.stdout else 0
    print(f"following {sent / seconds:,.0f} UDP requests/s for {seconds:g} s (userspace keeps up): follower CPU "
          f"{used / seconds:.0%} of a core; the programs' own time per call:")
    print(f"    {per_call(calls)}")


def _cpu_s(pid: int) -> float:
    """CPU seconds a process used so far (user + system, all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_capacity(rates: list[int], seconds: float, flows: str) -> None:
    """Follow UDP requests in this process while another process sends them (flows "one": all from
    one socket, one flow; "each": a socket, so a new flow, per request); count what arrives, what
    the ring buffer had to drop, and the flows the kernel shed."""
    from flowviz.correlate import Correlator
    from flowviz.filter import FlowFilter
    from flowviz.pipeline import Pipeline, tune_gc
    from flowviz.render.jsonl import JsonLinesWriter
    from flowviz.sources.live import LiveSource

    tune_gc()   # as the CLI does
    flt = FlowFilter(dport=SWARM.port, proto="udp")
    which = "one flow" if flows == "one" else "a new flow per request"
    print(f"sightings/s userspace takes (UDP requests through the path from another process, {which}, "
          f"{seconds:g} s per rate; correlated and written as JSON to /dev/null):")
    print(f"  {'requests/s sent':>16} {'sightings/s':>12} {'lost':>8} {'shed flows':>11}")
    best = 0.0
    for rate in rates:
        src = LiveSource(flt)
        corr = Correlator(flt=flt, window_ns=500_000_000, untrack=False)   # as follow --json makes it
        out = JsonLinesWriter(open(os.devnull, "w"))
        try:
            sender = subprocess.Popen([sys.executable, "-c", SENDER, str(rate), str(seconds), SWARM.netns,
                                       SWARM.addr, str(SWARM.port), flows], stdout=subprocess.PIPE, text=True)
            t0 = time.perf_counter()
            drain_until = None

            def tick():   # once the sender is done, half a second more to drain the ring buffer
                nonlocal drain_until
                if drain_until is None and sender.poll() is not None:
                    drain_until = time.perf_counter() + 0.5
                if drain_until is not None and time.perf_counter() >= drain_until:
                    pipeline.stop()
            pipeline = Pipeline(src, corr, [out], tick=tick, tick_s=0.05)
            pipeline.run()
            counted = corr.events   # correlated: taken from the ring is not yet followed
            elapsed = time.perf_counter() - t0
            sent, send_time = sender.stdout.read().split()
            lost, shed = src.lost, src.shed
        finally:
            src.close()
        rate_in = counted / elapsed
        if lost == 0:
            best = max(best, rate_in)
        print(f"  {int(sent) / float(send_time):>16,.0f} {rate_in:>12,.0f} {lost:>8,} {shed:>11,}")
    print(f"  sustained without loss: {best:,.0f} sightings/s (before issue #12's work: {BEFORE_SUSTAINED:,})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rates", default="500,1000,2000,3000,3500,4000,5000,6000,8000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench-live needs root", file=sys.stderr)
        return 2
    from flowviz.lab import down, up
    from flowviz.lab.net import netns_exists
    brought_up = not netns_exists(SWARM.netns)
    if brought_up:
        up("swarm-ingress", quiet=True)
    try:
        with tempfile.TemporaryDirectory(prefix="flowviz-bench-cache-") as kept:
            CACHE["kept"] = kept
            for tp in ("perf", "raw"):   # the kept program's first start compiles it (each way its own)
                stop_follow(start_follow("--dport", "9", tracepoints=tp))
            ATTACH_S.clear()
            bench_attach(args.starts)
            bench_throughput(args.rounds, args.seconds)
            bench_following_cost(500, args.seconds)
            for flows in ("one", "each"):
                bench_capacity([int(r) for r in args.rates.split(",")], 2.0, flows)
    finally:
        if brought_up:
            down(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
