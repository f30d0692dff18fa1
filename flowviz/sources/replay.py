"""Replay: pcap/pcapng files → HopEvents.

Interface names say where a sighting happened: ``"ingress_sbox/eth0"`` (a
namespace, then the device), or a bare ``"eth0"`` with ``netns=NAME`` in the
interface description, or a bare name with no namespace at all. Packet
comments of the form ``flowviz: key=value ...`` carry what a live recording
knew (direction, hook, skb, mark, netns inode, ifindex, drop reason).
Several files are merged by timestamp.

``-`` is standard input. A stream (standard input, a pipe, a FIFO) is read as it
arrives; when it is the only input, a thread reads it so that ``events`` can
say "nothing for now" (``None``) while the writer is quiet, and journeys finish
on time instead of waiting for the next packet: ``tcpdump -U -w - | flowviz replay -``.
"""

from __future__ import annotations

import functools
import heapq
import os
import queue
import stat
import sys
import threading
import time
from operator import attrgetter
from typing import BinaryIO, Final, Iterator, Optional
from urllib.parse import unquote

from ..annotations import notes_decode
from ..decode import sll_direction
from ..errors import BadCapture, FlowvizError
from ..gcuntrack import record
from ..model import (DROP, FREE, HOOK_NAMES, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, RX, TX, UNKNOWN_HOOK,
                     ChangeKind, HopEvent)
from ..pcapfile import Interface, Record, parse_meta, read_capture
from . import SourceStatus

DIRECTIONS: Final = frozenset((RX, TX, DROP, FREE))   #: what a recording's dir= may say
_record: Final = record


class InterfaceNotes:
    """What interface descriptions say about devices (``kind= master= parent= peer=``).

    Answers the correlator's :meth:`crossing` question for captures that
    carry these notes (flowviz's own recordings and samples); for others it
    knows nothing and the correlator falls back to namespaces and directions.
    """

    def __init__(self):
        self.devices: dict[str, dict] = {}
        self._answers: dict = {}   # (netns, ifname) of both sightings → crossing's answer (the notes as they are)

    def add(self, netns: Optional[str], ifname: Optional[str], description: Optional[str]) -> None:
        if not description or ifname is None:   # None: tcpdump -i any, each packet names its device
            return
        info = {k: unquote(v) for k, v in (tok.split("=", 1) for tok in description.split() if "=" in tok)}
        if info:
            self.devices[f"{netns}/{ifname}" if netns else ifname] = info
            self._answers.clear()

    def handed_to(self, received: HopEvent, frame):
        return None   # recordings already hold such a hop as a sighting of its own

    def mode_of(self, netns: Optional[str], ifname: str) -> Optional[str]:
        info = self.devices.get(f"{netns}/{ifname}" if netns else ifname)
        return info.get("mode") if info else None

    def crossing(self, a: HopEvent, b: HopEvent):
        """Asked for every hop, about a few pairs of devices: each pair's answer is worked out once."""
        key = (a.netns, a.ifname, b.netns, b.ifname)
        got = self._answers.get(key, self)   # self: not asked yet (None is an answer)
        if got is self:
            if len(self._answers) >= 4096:   # pairs a capture's devices make: bounded whatever it holds
                self._answers.clear()
            got = self._answers[key] = self._crossing(a, b)
        return got

    def _crossing(self, a: HopEvent, b: HopEvent):
        ia, ib = self.devices.get(a.place), self.devices.get(b.place)
        if ia is None or ib is None:
            return None
        if a.netns == b.netns:
            ma, mb = ia.get("master"), ib.get("master")
            if ma and ma == mb:
                return ChangeKind.BRIDGE, ma
            if ia.get("kind") == "bridge" and mb == a.ifname:
                return ChangeKind.BRIDGE, a.ifname
            if ib.get("kind") == "bridge" and ma == b.ifname:
                return ChangeKind.BRIDGE, b.ifname
        pa, pb = ia.get("peer"), ib.get("peer")
        if pa == b.place or pb == a.place or (pa and pa == pb and "/" not in pa):
            return ChangeKind.VETH, None   # a veth pair, or two ends of one wire/segment
        for ix, y in ((ia, b), (ib, a)):
            if ix.get("kind") == "macvlan" and ix.get("parent") == y.place:
                return ChangeKind.BRIDGE, f"{y.ifname} (macvlan)"
        return None


def _place(iface: Interface) -> tuple[Optional[str], str]:
    """(netns, device) an interface block names; netns None when it does not say."""
    name = iface.name or f"if{iface.index}"
    if "/" in name:
        ns, _, dev = name.rpartition("/")
        return (ns or None), dev
    if iface.description:
        for tok in iface.description.split():
            if tok.startswith("netns="):
                return unquote(tok[6:]) or None, name
    return None, name


STDIN: Final = "-"
IDLE_TICK_S: Final = 0.2   #: a quiet stream says so this often, so idle journeys finish


def is_stream(path: str) -> bool:
    """Standard input, a pipe, a FIFO, a character device: read as it arrives, with no end known."""
    if path == STDIN:
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False   # opening it says what is wrong


def _file_label(path: str) -> str:
    if path == STDIN:
        return "stdin"
    base = os.path.basename(path)
    for ext in (".pcapng", ".pcap", ".cap"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


class ReplaySource:
    """HopEvents from capture files, merged by time."""

    kind = "replay"

    def __init__(self, paths: list[str], *, stdin: Optional[BinaryIO] = None):
        """``stdin``: what ``-`` reads (default: this process's standard input)."""
        self.paths = list(paths)
        self._stdin = stdin
        #: one stream and nothing else: read on a thread, and tell when it is quiet
        self.streaming = len(self.paths) == 1 and is_stream(self.paths[0])
        self._arrived = time.monotonic_ns()
        self.problems: list[FlowvizError] = []
        self.read = 0
        self._last_ts = 0
        self._stopped = False
        self._places_used: set = set()
        #: device notes from the captures' interface descriptions (the correlator's topology)
        self.topology = InterfaceNotes()
        # Open every file and read its first record now: a file that is not a
        # capture at all fails here, before anything is written.
        self._streams = []
        for p in self.paths:
            it = self._file_events(p)
            try:
                first = next(it)
            except StopIteration:
                continue
            except BadCapture as e:
                if e.partial:
                    self.problems.append(e)
                    continue
                raise
            self._streams.append(_prepend(first, it))

    def _file_events(self, path: str) -> Iterator[HopEvent]:
        # Several files whose interfaces do not name a namespace are taken to be
        # one namespace each (per-namespace captures): the file name stands in.
        label = _file_label(path) if len(self.paths) > 1 else None
        # by the interface object's id (hashing the dataclass was a call into the interpreter per
        # record); the value holds the interface, so its id is not reused while it is here
        places: dict[int, tuple] = {}
        stream = None
        if path == STDIN:
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
        for rec in read_capture(path, stream):
            got = places.get(id(rec.iface))
            if got is None:
                got = places[id(rec.iface)] = (rec.iface, self._new_place(rec.iface, label))
            yield self._event(rec, got[1])

    def _new_place(self, iface: Interface, label: Optional[str]) -> tuple:
        netns: Optional[str]
        ifname: Optional[str]
        netns, ifname = _place(iface)
        if netns is None and label is not None:
            netns = label
        if iface.linktype == LINKTYPE_LINUX_SLL2 and iface.name in (None, "any"):
            ifname = None   # tcpdump -i any: each packet names its device by index (SLL2)
        elif (netns, ifname) in self._places_used:
            # another interface of the same name and no namespace (mergecap of
            # per-namespace captures): keep them apart by their interface number
            ifname = f"{ifname}#{iface.index}"
        self._places_used.add((netns, ifname))
        self.topology.add(netns, ifname, iface.description)
        return netns, ifname, (self.topology.mode_of(netns, ifname) if ifname is not None else None)

    def _event(self, rec: Record, place: tuple) -> HopEvent:
        iface = rec.iface
        netns, ifname, mode = place
        if rec.comment:   # what a recording knew; most packets of most captures carry nothing
            meta, text = _parse_meta(rec.comment)
            said = meta.get("dir")
            direction = said if said in DIRECTIONS else rec.direction   # anything else: unknown
            netns_id, ifindex, skb, mark = meta.get("netns_id"), meta.get("ifindex"), meta.get("skb"), meta.get("mark")
            hook, reason, cpu = _hook(meta.get("hook", "capture")), meta.get("reason"), meta.get("cpu")
            notes = notes_decode(unquote(meta["notes"])) if "notes" in meta else ()
            gap = meta.get("gap") == "1"
        else:
            direction, text, hook, notes, gap = rec.direction, None, "capture", (), False
            netns_id = ifindex = skb = mark = reason = cpu = None
        if (direction is None or ifindex is None) and iface.linktype in _COOKED:
            d, idx = sll_direction(rec.data, iface.linktype)
            direction = direction or d
            if ifindex is None:
                ifindex = idx
        if ifname is None:
            ifname = f"if{ifindex}"
            mode = self.topology.mode_of(netns, ifname)
        # every field in HopEvent's order, without its constructor: keywords cost a third of building
        # it, and its __new__ is Python code (compiled, tuple.__new__ is a third)
        return _record(HopEvent, rec.ts_ns, ifname, direction, rec.data, iface.linktype, rec.orig_len, netns,
                       netns_id, ifindex, hook, skb, mark, reason, cpu, text, mode, notes, gap)

    def _guarded(self, it: Iterator[HopEvent]) -> Iterator[HopEvent]:
        try:
            yield from it
        except BadCapture as e:
            self.problems.append(e)

    def events(self) -> Iterator[Optional[HopEvent]]:
        streams = [self._guarded(s) for s in self._streams]
        if not streams:
            return
        if self.streaming:
            yield from self._stream_events(streams[0])
            return
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=attrgetter("ts_ns"))
        for ev in merged:
            if self._stopped:
                return
            self.read += 1
            self._last_ts = ev.ts_ns
            yield ev

    def _stream_events(self, stream: Iterator[HopEvent]) -> Iterator[Optional[HopEvent]]:
        """A lone stream's sightings, and None when it is quiet; when each arrived, for now_ns."""
        for ev in _quiet_ticks(stream, IDLE_TICK_S):
            if self._stopped:
                return
            if ev is not None:
                self.read += 1
                self._last_ts = ev.ts_ns
                self._arrived = time.monotonic_ns()
            yield ev

    def now_ns(self) -> int:
        """Stream time: the last sighting's. A quiet stream's time goes on with the clock from there,
        so what was open when it went quiet finishes."""
        if self.streaming:
            return self._last_ts + (time.monotonic_ns() - self._arrived)
        return self._last_ts

    def status(self) -> SourceStatus:
        names = ", ".join("standard input" if p == STDIN else os.path.basename(p) for p in self.paths)
        return SourceStatus("replay", names, events=self.read, position=f"{self.read} packets read")

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        self._streams = []


#: parse_meta, remembered: a recording's comments repeat (a mark, a hook, a namespace). The dicts it
#: hands back are shared, so nothing may change them.
_parse_meta: Final = functools.lru_cache(maxsize=4096)(parse_meta)
_COOKED: Final = frozenset({LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2})   # where the frame itself says direction


def _hook(claimed) -> str:
    return claimed if claimed in HOOK_NAMES else UNKNOWN_HOOK


def _prepend(first, it):
    yield first
    yield from it


_END: Final = object()


def _quiet_ticks(it: Iterator[HopEvent], every_s: float) -> Iterator[Optional[HopEvent]]:
    """``it``'s items, read on a thread; ``None`` whenever ``every_s`` passes without one.

    The thread blocks in read() while the writer is quiet; it is a daemon, so a stop while it
    waits does not hold up the exit."""
    q: queue.Queue = queue.Queue(maxsize=4096)

    def pump() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as e:   # handed over, raised where the caller reads
            q.put(e)
        finally:
            q.put(_END)

    threading.Thread(target=pump, name="flowviz-replay-stream", daemon=True).start()
    while True:
        try:
            item = q.get(timeout=every_s)
        except queue.Empty:
            yield None
            continue
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item

