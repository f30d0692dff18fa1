"""Kernel records → HopEvents: the one place a record of bpf/fv_trace.c becomes the model.

Compiled with the rest of the hot path (flowviz/native.py): the live source converts every sighting
here, as fast as the ring buffer hands them over.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ..gcuntrack import record
from ..model import DROP, FREE, LINKTYPE_ETHERNET, LINKTYPE_RAW, RX, TX, HopEvent
from . import hooks

#: struct fv_event of bpf/fv_events.h, field for field (tests/unit/test_bpf_struct.py checks it)
FV_EVENT: Final = struct.Struct("<QQ6IHBBBB2s16s128s")
FV_EVENT_FIELDS: Final = ("ts_ns", "skb", "netns", "ifindex", "len", "mark", "reason", "cpu", "caplen", "hook",
                          "l2", "nnotes", "flags", "pad", "ifname", "data")
FV_EV_GAP: Final = 1
FV_EV_COMPACT: Final = 2
#: the head of struct fv_event, all a record holds when it carries no bytes (FV_EVENT_HEAD)
FV_HEAD: Final = struct.Struct("<QQ6IHBBBB2s16s")
#: bytes of compact sightings' skbs kept, at most: more than fv_tracked (65536) can have followed at once
SNAPS_MAX: Final = 1 << 17

_record: Final = record

#: hook number → (tracepoint name shown to people, direction); 3 (FV_HOOK_RX_ENQUEUE, netif_rx) is
#: not attached any more, and the kernel never sends it
HOOKS: Final = {1: ("netif_receive_skb", RX), 2: ("net_dev_start_xmit", TX), 4: ("kfree_skb", DROP),
                5: ("consume_skb", FREE)}


class Records:
    """Converts one follower's records: ``wall_offset`` turns the kernel's monotonic clock into wall
    time, ``names`` names namespaces (``label(inode)``: name and mode), ``reasons`` drop reasons."""

    def __init__(self, wall_offset: int, names: Any, reasons: dict) -> None:
        self.wall_offset = wall_offset
        self.names = names
        self.reasons = reasons
        self.compact = 0                      #: sightings sent without their bytes (unchanged since the skb's last)
        self.snaps: dict[int, bytes] = {}     #: skb → the bytes of its last sighting
        self._ifnames: dict[bytes, str] = {}  #: the record's device name field → the name

    def convert(self, raw: bytes) -> HopEvent:
        if len(raw) >= FV_EVENT.size:
            (ts, skb, netns, ifindex, length, mark, reason, cpu, caplen, hook, l2, nnotes, flags, _pad, ifname,
             data) = FV_EVENT.unpack_from(raw)
            data = data[:caplen]
        else:
            (ts, skb, netns, ifindex, length, mark, reason, cpu, caplen, hook, l2, nnotes, flags, _pad,
             ifname) = FV_HEAD.unpack_from(raw)
            data = b""
        hook_name, direction = HOOKS.get(hook, ("?", None))
        data, flags = self.bytes_of(skb, data, flags, direction == DROP or direction == FREE)
        name, mode = self.names.label(netns) if netns else (None, None)
        dev = self._ifnames.get(ifname)
        if dev is None:
            if len(self._ifnames) >= 4096:
                self._ifnames.clear()
            dev = self._ifnames[ifname] = ifname.split(b"\0", 1)[0].decode("utf-8", "replace") or "?"
        # HopEvent(...) in its field order, without the NamedTuple's constructor (Python code: compiled,
        # this is a third of its time, a ninth of its time with keywords; tests/unit/test_bpf_struct.py
        # compares the two)
        return _record(
            HopEvent,
            ts + self.wall_offset,                                     # ts_ns
            dev,                                                       # ifname
            direction,                                                 # dir
            data,                                                      # data
            LINKTYPE_ETHERNET if l2 else LINKTYPE_RAW,                 # linktype
            length,                                                    # length
            name,                                                      # netns
            netns or None,                                             # netns_id
            ifindex or None,                                           # ifindex
            hook_name,                                                 # hook
            skb,                                                       # skb
            mark,                                                      # mark
            self.reasons.get(reason, str(reason)) if direction == DROP else None,   # drop_reason
            cpu,                                                       # cpu
            None,                                                      # comment
            mode,                                                      # mode
            hooks.convert_notes(raw, FV_EVENT.size, nnotes) if nnotes else (),  # notes
            bool(flags & FV_EV_GAP),                                   # gap
        )

    def bytes_of(self, skb: int, data: bytes, flags: int, ending: bool) -> tuple[bytes, int]:
        """A compact sighting's bytes are its skb's previous event's (the kernel found them unchanged);
        a sighting with bytes is kept for the next. Without them (never, unless more skbs were
        followed at once than are kept) it is sent on without bytes, marked as after a gap."""
        snaps = self.snaps
        if flags & FV_EV_COMPACT:
            self.compact += 1
            kept = snaps.pop(skb, None) if ending else snaps.get(skb)
            return (kept, flags) if kept is not None else (b"", flags | FV_EV_GAP)
        if ending:
            snaps.pop(skb, None)
        elif data:
            snaps[skb] = data
            if len(snaps) > SNAPS_MAX:   # the first kept first out
                del snaps[next(iter(snaps))]
        return data, flags
