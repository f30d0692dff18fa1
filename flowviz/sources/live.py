"""Live: bcc programs on tracepoints → HopEvents (``flowviz follow``).

Compiles bpf/fv_trace.c with bcc against the shim include tree in bpf/shim
(no kernel headers needed), with every kernel struct offset taken from BTF
and every tracepoint field offset from tracefs, passed as -D macros together
with the filter. Real kernel headers are the fallback only where the kernel
has no BTF. Everything attached is detached in :meth:`LiveSource.close`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import socket
import struct
import time
from typing import Iterator, Optional

from ..errors import BadInput, FlowvizError, MissingFeature, NeedRoot
from ..filter import FlowFilter
from ..model import LOST, HopEvent
from . import SourceStatus, bpfcache, hooks
from .records import Records
from .ringbuf import MAPPED_OK, MappedRing
from .kernel import bpf_dir, has_privileges, release, tracefs, use_shim_headers

#: sightings one take from the ring buffer converts before they are correlated. Unbounded, a poll kept
#: converting while the kernel kept producing (converting is cheaper than correlating): the backlog
#: grew in Python instead of in the ring, where the kernel would have shed new flows, and a poll could
#: last as long as the load (scripts/bench-live fed 109,000 of 784,000 taken at 8,000 requests/s).
POLL_MAX = 4096
#: seconds between two takes from the ring buffer while sightings come (the kernel wakes no one: see
#: FV_SUBMIT in bpf/fv_trace.c); while none come, twice as long each time, up to POLL_IDLE_S (a
#: follower waiting for traffic wakes 20 times a second). The ring holds ~21,000 sightings: 50 ms of
#: the busiest flood bench-live offers.
POLL_S = 0.01
POLL_IDLE_S = 0.05
DRAIN_S = 1.0   #: stopped, the ring's last sightings are taken for at most this long (the TUI waits 3 s)
BUDGET_WINDOW_S = 1.0   #: --cpu: the share is kept over each such span (a burst may use more within it)


class CpuBudget:
    """``follow --cpu``: following uses at most ``share`` of one CPU. While it is over, the follower
    waits before its next take from the ring buffer; the ring fills, and the kernel sheds new flows
    (fv_admit) instead of the followed ones losing sightings. ``clock`` and ``used``: wall time and
    the CPU time of the thread that takes from the ring (it also joins and writes what it takes), in
    seconds. Only that thread's: the TUI draws on another, and a share its drawing alone used up would
    owe a wait that only grew, so that nothing was read again. ``default``: the share was not asked
    for (following everything: ALL_CPU_PERCENT in follow.py)."""

    def __init__(self, share: float, clock=time.monotonic, used=time.thread_time, default: bool = False):
        self.share = share
        self.default = default
        self.clock, self.used = clock, used
        self._since: Optional[tuple[float, float]] = None   # the window's start: the first take's
        self.waited = 0.0   #: seconds waited in all

    def owed(self) -> float:
        """Seconds to wait now so that the CPU time used since the window began is within the share.
        The first window begins at the first call (the first take), so starting up (compiling the
        program, reading the namespaces) is not counted against the budget."""
        wall, used = self.clock(), self.used()
        if self._since is None:
            self._since = (wall, used)
            return 0.0
        wall0, used0 = self._since
        owed = max(0.0, (used - used0) / self.share - (wall - wall0))
        if wall - wall0 >= BUDGET_WINDOW_S:
            self._since = (wall + owed, used)   # the next window begins when this wait ends
        return owed

#: (category, event, program, macro of the skbaddr offset). Not net:netif_rx: every packet it queues is
#: seen again by netif_receive_skb (__netif_receive_skb_core, which every receive path goes through) or
#: dropped (kfree_skb, on the same device), so its sightings were duplicates the correlator set aside
#: (a veth's every reception was reported twice). Attached, it cost 6% of throughput while the filter
#: matched nothing, and following every packet a third more sightings (scripts/bench-live).
TRACEPOINTS = (
    ("net", "netif_receive_skb", "fv_rx", "FV_TP_RX_SKB"),
    ("net", "net_dev_start_xmit", "fv_tx", "FV_TP_TX_SKB"),
    ("skb", "kfree_skb", "fv_drop", "FV_TP_DROP_SKB"),
    ("skb", "consume_skb", "fv_free", "FV_TP_FREE_SKB"),
    ("skb", "skb_copy_datagram_iovec", "fv_copy", "FV_TP_COPY_SKB"),   # no sighting: forgets what a socket read
)
RINGBUF_PAGES = 1024          # 4 MiB: ~21,000 events of slack before loss (FLOWVIZ_RINGBUF_PAGES: a power of 2)


# --- what the machine offers ---------------------------------------------------------

def tracepoint_format(root: str, cat: str, event: str) -> str:
    try:
        with open(os.path.join(root, "events", cat, event, "format")) as f:
            return f.read()
    except OSError:
        raise MissingFeature(f"tracepoint {cat}:{event} is not in this kernel") from None


def field_offset(fmt: str, field: str) -> int:
    m = re.search(r"field:[^;]*\b" + re.escape(field) + r";\s*offset:(\d+);", fmt)
    if m is None:
        raise MissingFeature(f"tracepoint has no field {field}")
    return int(m.group(1))


def drop_reason_names(root: str) -> dict[int, str]:
    """enum skb_drop_reason value → name, as the running kernel prints them."""
    try:
        fmt = tracepoint_format(root, "skb", "kfree_skb")
    except MissingFeature:
        return {}
    return {int(n): name for n, name in re.findall(r"\{\s*(\d+),\s*\"(\w+)\"\s*\}", fmt)}


class CapturedStderr:
    """What C code (libbcc, clang) writes to file descriptor 2 while active, kept instead of shown."""

    text = ""

    def __enter__(self):
        import tempfile
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False

    def first_error(self) -> str:
        lines = [l for l in self.text.splitlines() if l.strip()]
        for l in lines:
            if "error" in l.lower():
                return l.strip()
        return lines[0].strip() if lines else ""


# --- building the program -------------------------------------------------------------------

def filter_cflags(flt: FlowFilter, netns_inode: Optional[int]) -> list[str]:
    """The filter as -D macros (see fv_match in bpf/fv_trace.c)."""
    out = []
    for name, macro in (("dport", "FV_DPORT"), ("sport", "FV_SPORT"), ("port", "FV_PORT")):
        v = getattr(flt, name)
        if v is not None:
            out.append(f"-D{macro}={v}")
    if flt.proto is not None:
        out.append(f"-DFV_PROTO={ {'tcp': 6, 'udp': 17, 'icmp': 1}[flt.proto] }")
    if flt.host is not None:
        if ":" in flt.host:
            raw = socket.inet_pton(socket.AF_INET6, flt.host)
            hi, lo = struct.unpack("=QQ", raw)   # as the BPF side loads them: native order
            out += [f"-DFV_HOST6_0={hi}ULL", f"-DFV_HOST6_1={lo}ULL"]
        else:
            out.append(f"-DFV_HOST4={struct.unpack('=I', socket.inet_aton(flt.host))[0]}U")
    if flt.expr is not None:
        out.append("-DFV_EXPR")
    if netns_inode is not None:
        out.append(f"-DFV_NETNS={netns_inode}U")
    if flt.empty and netns_inode is None:
        out.append("-DFV_ALL")
    return out


def ringbuf_pages() -> int:
    """The ring buffer's size in pages: RINGBUF_PAGES, or FLOWVIZ_RINGBUF_PAGES (a power of 2; the
    tests make it small to see what happens when it is full)."""
    text = os.environ.get("FLOWVIZ_RINGBUF_PAGES")
    if text is None:
        return RINGBUF_PAGES
    n = int(text) if text.isdigit() else 0
    if n < 1 or n > 1 << 16 or n & (n - 1):
        raise BadInput(f"FLOWVIZ_RINGBUF_PAGES={text}: give a power of 2 from 1 to 65536")
    return n


#: sk_buff fields every sighting reads, with their sizes: where they lie within SPAN_MAX bytes of
#: each other (they do on every kernel since the "headers" group), one read takes them all
SPAN_FIELDS = {"SKB_PROTOCOL": 2, "SKB_NETWORK_HEADER": 2, "SKB_MAC_HEADER": 2, "SKB_HEAD": 8, "SKB_DATA": 8}
SPAN_MAX = 64


def span_cflags(offsets: dict[str, int]) -> list[str]:
    """-DFV_SKB_SPAN_START/LEN when SPAN_FIELDS fit in one read of at most SPAN_MAX bytes (else none:
    the program reads them one by one)."""
    start = min(offsets[k] for k in SPAN_FIELDS)
    end = max(offsets[k] + size for k, size in SPAN_FIELDS.items())
    if end - start > SPAN_MAX or any(offsets[k] % size for k, size in SPAN_FIELDS.items()) or start % 8:
        return []
    return [f"-DFV_SKB_SPAN_START={start}", f"-DFV_SKB_SPAN_LEN={end - start}"]


def build_cflags(flt: FlowFilter, netns_inode: Optional[int], root: str, sample: int = 1) -> list[str]:
    from .btf import kernel_offsets
    offsets = kernel_offsets()
    cf = [f"-DFV_{k}={v}" for k, v in offsets.items()] + span_cflags(offsets)
    for cat, event, _prog, macro in TRACEPOINTS:
        fmt = tracepoint_format(root, cat, event)
        cf.append(f"-D{macro}={field_offset(fmt, 'skbaddr')}")
        if event == "kfree_skb":
            cf.append(f"-DFV_TP_DROP_REASON={field_offset(fmt, 'reason')}")
    nums = release()
    cf += [f"-DFV_RINGBUF_PAGES={ringbuf_pages()}", f"-DPAGE_SIZE={os.sysconf('SC_PAGE_SIZE')}",
           f"-DFV_LINUX_VERSION_CODE={(nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)}",
           f"-I{bpf_dir()}",
           "-Werror=implicit-function-declaration"]   # else a function left out by an #ifdef loads as a call to nothing
    if sample > 1:
        cf.append(f"-DFV_SAMPLE={sample}")
    if os.environ.get("FLOWVIZ_COMPACT", "1") == "0":   # every sighting with its bytes (the tests compare)
        cf.append("-DFV_NO_COMPACT")
    return cf + filter_cflags(flt, netns_inode)


def program_text(flt: Optional[FlowFilter] = None) -> str:
    """bpf/fv_trace.c with bpf/fv_hooks.h written in where it is included (bcc rewrites map
    calls and makes programs only of what is in the main file), and the filter's tcpdump
    expression, translated to C, where FV_EXPR_FUNCTION is."""
    text = (bpf_dir() / "fv_trace.c").read_text()
    text = text.replace('#include "fv_hooks.h"\n', (bpf_dir() / "fv_hooks.h").read_text(), 1)
    if flt is not None and flt.expr is not None:
        text = text.replace("/* FV_EXPR_FUNCTION */\n", flt.expr.kernel_c(), 1)
    return text


def final_c(cflags: list[str], flt: Optional[FlowFilter] = None) -> str:
    """The C bcc compiles, with the -D macros written out (``follow --ebpf``)."""
    defines = []
    for f in cflags:
        if f.startswith("-D"):
            name, _, value = f[2:].partition("=")
            defines.append(f"#define {name} {value}".rstrip())
    return "\n".join(["/* flowviz: -D macros for this kernel and filter */", *defines, "", program_text(flt)])


# --- the source ------------------------------------------------------------------------

class LiveSource:
    """HopEvents from the running kernel."""

    kind = "live"
    budget: Optional[CpuBudget] = None   #: follow --cpu

    def __init__(self, flt: FlowFilter, *, netns: Optional[str] = None, names=None, sample: int = 1,
                 cpu: Optional[float] = None, cpu_default: bool = False):
        """``cpu``: at most this share of one CPU (``follow --cpu``, or its default ``cpu_default``;
        None: as much as it takes)."""
        if not has_privileges():
            raise NeedRoot("flowviz follow needs root, or CAP_BPF and CAP_PERFMON (try: sudo flowviz follow ...)")
        try:
            import bcc  # noqa: F401  (the distribution's python3-bpfcc)
        except ImportError:
            raise MissingFeature("bcc is not importable: apt-get install python3-bpfcc, and run flowviz from "
                                 "a Python that sees it (scripts/setup makes such a .venv)") from None
        from ..topology.namespaces import NetnsNames
        self._own_names = names is None
        self.names = names if names is not None else NetnsNames()
        self.netns_inode = self.names.resolve(netns) if netns else None
        self.root = tracefs()
        self.reasons = drop_reason_names(self.root)
        self.hooks = hooks.detect(self.root)
        self.sample = sample
        self.budget = CpuBudget(cpu, default=cpu_default) if cpu is not None else None
        self.cflags = build_cflags(flt, self.netns_inode, self.root, sample) + hooks.hook_cflags(self.hooks)
        self.problems: list[FlowvizError] = []
        self.filter = flt
        self.bpf = None
        self.attached: list[str] = []
        self.tracepoints = ""            #: "raw" or "perf": how the tracepoints are attached
        self.reader = ""                 #: "mapped" or "libbpf": how the ring buffer is read (_open_ring)
        self._ring: Optional[MappedRing] = None
        self.compiled = ""               #: "clang" (bcc compiled it now) or "cache" (kept from an earlier start)
        self.hooks_attached: list[str] = []
        self.notices: list[str] = []
        self.delivered = 0
        self._pending: list[HopEvent] = []
        self._stopped = False
        self._lost = 0
        self._refused = (0, 0)
        self._read_bytes = 0             #: ring buffer bytes read, told to the kernel (fv_ring_use[1])
        self._told = 0
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; events carry wall-clock time
        self.records = Records(time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC), self.names,
                               self.reasons)
        self.convert = self.records.convert   # the one place a kernel record becomes the model
        try:
            self._load()
        except BaseException:
            self.close()   # the namespace names' refresher too
            raise

    def _load(self) -> None:
        """Raw tracepoints where the kernel takes them, else perf tracepoints (FLOWVIZ_TRACEPOINTS=raw
        or =perf asks for one; the tests run both). Only the entry points of the way tried are
        compiled (-DFV_TP_RAW, -DFV_TP_PERF: half the compile time); a kernel that refuses raw
        tracepoints costs a second compile."""
        use_shim_headers()
        text = program_text(self.filter)   # an expression too large for the kernel says so here, as itself
        want = _asked("FLOWVIZ_TRACEPOINTS", "raw", "perf")
        if want != "perf":
            try:
                self._load_as("raw", text)
                return
            except RawRefused as e:
                if want == "raw":
                    raise MissingFeature(f"raw tracepoints refused here ({e}): FLOWVIZ_TRACEPOINTS=perf") from None
                self.notices.append(f"raw tracepoints refused ({e}): perf tracepoints instead")
        self._load_as("perf", text)

    def _load_as(self, kind: str, text: str) -> None:
        """Compile (or take from the cache) and attach the program with ``kind`` tracepoints."""
        cflags = self.cflags + [f"-DFV_TP_{kind.upper()}"]
        where = bpfcache.cache_dir()
        key = bpfcache.cache_key(text, cflags, bpf_dir()) if where else ""
        entry = bpfcache.lookup(where, key) if where else None
        if entry is not None:
            try:
                self.bpf = bpfcache.CachedBPF(entry)
                self._attach(kind)
                self.compiled = "cache"
                return
            except Exception as e:
                # the kernel refused what was kept: forget it and compile as if it were not there. (A
                # kernel without raw tracepoints looks the same here, since the verifier answers at
                # attach; the program compiled anew raises that refusal again.)
                self._unload()
                self.notices.clear()
                bpfcache.forget(where, key)
                self.notices.append(f"the program kept in {where} was refused ({e}): compiled it again")
        captured = self._compile(text, cflags)
        self._attach(kind)
        if where and captured is not None:
            try:
                bpfcache.store(where, key, captured)
            except OSError:
                pass   # no room, or read-only: the next start compiles again

    def _compile(self, text: str, cflags: list[str]) -> Optional[dict]:
        """bcc compiles and loads the program; what the cache keeps of it (None: nothing)."""
        from bcc import BPF
        try:
            with CapturedStderr() as err:
                self.bpf = BPF(text=text, cflags=cflags)
        except Exception as e:   # bcc raises plain Exception for compile and load errors
            said = err.first_error() or str(e)
            raise MissingFeature(f"the tracer did not compile or load: {said} (see: flowviz follow --ebpf)") from None
        self.compiled = "clang"
        try:
            return bpfcache.capture(self.bpf)
        except Exception:   # a bcc whose library lacks a call the cache uses: no cache, nothing else lost
            return None

    def _attach(self, kind: str) -> None:
        try:
            self._attach_tracepoints(kind)
            self._open_ring(self.bpf["fv_events"])
            self._use_fd = self.bpf["fv_ring_use"].map_fd
        except BaseException:
            self._unload()
            raise
        self.hooks_attached, problems = hooks.attach(self.bpf, self.hooks)
        self.notices.append(hook_notice(self.hooks, self.hooks_attached, problems))

    def _open_ring(self, table) -> None:
        """Read the ring buffer through its own mappings (flowviz.sources.ringbuf) where that is safe,
        else through libbpf, a callback per record. FLOWVIZ_RING=mapped or =libbpf asks for one (the
        tests run both)."""
        want = _asked("FLOWVIZ_RING", "mapped", "libbpf")
        if want == "mapped" and not MAPPED_OK:
            raise MissingFeature(f"FLOWVIZ_RING=mapped: not on {platform.machine()} (x86-64 only): give libbpf")
        if want != "libbpf" and MAPPED_OK:
            self._ring = MappedRing(table.map_fd, table.max_entries)
            self.reader = "mapped"
        else:
            table.open_ring_buffer(self._on_event)
            self.reader = "libbpf"

    def _take_mapped(self) -> None:
        records, used = self._ring.take(POLL_MAX - len(self._pending))
        convert = self.convert
        self._pending += [convert(r) for r in records]
        self._read_bytes += used

    def _attach_tracepoints(self, kind: str) -> None:
        """``kind``: "raw" (RawRefused when the kernel says no) or "perf"."""
        for cat, event, prog, _ in TRACEPOINTS:
            try:
                if kind == "raw":
                    self.bpf.attach_raw_tracepoint(tp=event, fn_name=f"{prog}_raw")
                else:
                    self.bpf.attach_tracepoint(tp=f"{cat}:{event}", fn_name=prog)
            except Exception as e:   # bcc raises plain Exception: the kernel or the verifier said no
                if kind == "raw":
                    raise RawRefused(str(e)) from None
                raise MissingFeature(f"could not attach {cat}:{event}: {e}") from None
            self.attached.append(f"{cat}:{event}")
        self.tracepoints = kind

    @property
    def compact(self) -> int:
        """Sightings the kernel sent without their bytes (unchanged since the skb's last)."""
        return self.records.compact

    def _on_event(self, _ctx, data, size) -> int:
        self._pending.append(self.convert(ctypes.string_at(data, size)))
        self._read_bytes += (size + 15) & ~7   # as fv_reserved counts it: the record's header, 8-byte aligned
        if len(self._pending) >= POLL_MAX:
            return -1   # libbpf ends this take (this record is taken); the rest wait in the ring
        return 0

    def _tell_read(self) -> None:
        """The kernel sheds new flows while reserved − read passes half the ring (fv_admit)."""
        if self._read_bytes == self._told:
            return
        from bcc.libbcc import lib
        one, value = ctypes.c_int(1), ctypes.c_ulonglong(self._read_bytes)
        lib.bpf_update_elem(self._use_fd, ctypes.byref(one), ctypes.byref(value), 0)
        self._told = self._read_bytes

    def events(self) -> Iterator[Optional[HopEvent]]:
        """Sightings as they arrive, at most POLL_MAX a take; after any that the kernel could not hand
        over (the lost count grew), a LOST marker, so that journeys open then are known to possibly
        miss one. The kernel wakes no one (FV_SUBMIT): what is in the ring is taken every POLL_S
        (up to POLL_IDLE_S while it stays empty), and at once again after a take that stopped at
        POLL_MAX. Under ``--cpu``, each take waits until the budget allows it.

        Once stopped, what the programs had put in the ring by then is taken, at once and whatever
        the budget says, and then the sightings end: a followed packet's later hops may wait there
        (under a budget, up to half the ring), and left behind, its journey would end short of them
        and unmarked. That takes at most DRAIN_S; what is left then counts as lost (a LOST marker)."""
        take = self._take_mapped if self._ring is not None else self.bpf.ring_buffer_consume
        lost_seen = self.lost
        owed = False   # a loss whose marker must come (again) after the next batch
        capped = False
        wait = POLL_S
        until: Optional[int] = None   # stopped: the ring bytes put in by then (fv_ring_use[0])
        drain_end = 0.0
        while True:
            if until is None and self._stopped:
                until, drain_end = self._made(), time.monotonic() + DRAIN_S
            if until is not None:
                if self._read_bytes >= until:
                    break
                if time.monotonic() >= drain_end:
                    owed = True   # cut short: the journeys open may miss a sighting left in the ring
                    break
            else:
                self._pause(0.0 if capped else wait)
            # Read before the take: a sighting lost before now was lost after every record committed
            # before it; a take that drains the ring takes all of those, so the marker comes after
            # them. (Read after it, a loss could be counted while earlier records still waited: their
            # journey would begin after the marker and never be marked.) A take that stopped at
            # POLL_MAX may have left some of those in the ring: the marker comes again after the next
            # batch, until a take drained the ring.
            lost = self.lost
            take()
            capped = len(self._pending) >= POLL_MAX   # it stopped there: the ring may hold more
            wait = POLL_S if self._pending else min(wait * 2, POLL_IDLE_S)
            self._tell_read()
            if self._pending:
                batch, self._pending = self._pending, []
                self.delivered += len(batch)
                yield from batch
            elif until is not None:
                break   # nothing more committed (a take below `until` that finds none: never wait)
            else:
                yield None
            if lost > lost_seen:
                lost_seen = lost
                owed = True
            if owed:
                yield HopEvent(time.time_ns(), "", LOST, b"")
                owed = capped
        if owed or self.lost > lost_seen:   # lost while the last of the ring was taken
            yield HopEvent(time.time_ns(), "", LOST, b"")

    def _made(self) -> int:
        """Ring buffer bytes the programs have put in so far (as _read_bytes counts them)."""
        if self.bpf is None:
            return self._read_bytes
        try:
            return int(self.bpf["fv_ring_use"][ctypes.c_int(0)].value)
        except (KeyError, TypeError, ValueError, AttributeError):
            return self._read_bytes   # nothing to wait for

    def _pause(self, wait: float) -> None:
        """Before a take: ``wait`` seconds (0: the last take stopped at POLL_MAX, the ring holds more),
        then what the budget owes."""
        if wait:
            time.sleep(wait)
        if self.budget is not None:
            self._keep_budget(self.budget)

    def _keep_budget(self, budget: CpuBudget) -> None:
        left = budget.owed()
        while left > 0 and not self._stopped:   # in short naps: a stop is not kept waiting
            nap = min(0.05, left)
            time.sleep(nap)
            budget.waited += nap
            left -= nap

    def now_ns(self) -> int:
        return time.time_ns()

    @property
    def refused(self) -> tuple[int, int]:
        """Flows not followed: (shed, because the ring buffer was past half full when they began;
        left out by --sample)."""
        if self.bpf is not None:
            try:
                t = self.bpf["fv_refused"]
                self._refused = tuple(sum(int(getattr(v, "value", v)) for v in t[ctypes.c_int(i)]) for i in (0, 1))
            except (KeyError, TypeError, ValueError):
                pass
        return self._refused

    @property
    def shed(self) -> int:
        return self.refused[0]

    @property
    def lost(self) -> int:
        """Sightings the kernel could not hand over (the ring buffer was full)."""
        if self.bpf is not None:
            try:
                self._lost = sum(int(getattr(v, "value", v)) for v in self.bpf["fv_lost"][ctypes.c_int(0)])
            except (KeyError, TypeError, ValueError):
                pass
        return self._lost

    def status(self) -> SourceStatus:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        if now - t0 >= 1.0:
            self._rate = (self.delivered - n0) / (now - t0)
            self._rate_mark = (now, self.delivered)
        label = f"{len(self.attached)} {self.tracepoints} tracepoints"
        if self.budget is not None:   # why new flows are shed on a busy host
            label += f", within {self.budget.share * 100:g}% of a CPU"
        return SourceStatus("live", label, events=self.delivered, lost=self.lost, shed=self.shed, rate=self._rate,
                            notes=tuple(self.notices))

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        """Detach every program and free every map (also on errors and signals)."""
        if self._own_names:
            self.names.close()
        self._unload()

    def _unload(self) -> None:
        """Detach the programs and free the maps (a start that tries another way goes on from here)."""
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self.bpf is not None:
            bpf = self.bpf
            try:
                self._lost = self.lost   # the last readings, before the maps go
                self._refused = self.refused
            finally:
                self.bpf = None
                self.attached = []
                bpf.cleanup()


class RawRefused(Exception):
    """The kernel would not attach a raw tracepoint program (perf tracepoints may still do)."""


def _asked(variable: str, *ways: str) -> str:
    """Which of ``ways`` the environment asks for in ``variable``; "auto" when it does not say."""
    want = os.environ.get(variable, "auto")
    if want != "auto" and want not in ways:
        raise MissingFeature(f"{variable}={want}: give {' or '.join(ways)}")
    return want


def hook_notice(statuses: list, attached: list[str], problems: list[str]) -> str:
    """The one start-up line about the optional hooks: exactly what is attached, what is not, and why."""
    parts = []
    if attached:
        parts.append("optional hooks attached: " + ", ".join(attached))
    why: dict[str, list[str]] = {}
    for st in statuses:
        if not st.available:
            why.setdefault(st.why, []).append(st.group.name)
    missing = "; ".join(f"{', '.join(n)}: {w}" for w, n in why.items())
    if missing:
        parts.append(f"not attached ({missing})")
    parts += problems
    if not attached:
        parts.append("the tracepoints still see every device crossing")
    return "; ".join(parts)
