"""The kernel/user record is defined once (bpf/fv_events.h) and mirrored once (FV_EVENT):
this test fails when they drift apart."""

from __future__ import annotations

import re
import struct
from importlib import resources

from flowviz.sources.records import FV_EVENT, FV_EVENT_FIELDS

C_TYPES = {"__u64": "Q", "__u32": "I", "__u16": "H", "__u8": "B", "char": "s"}


def header_fields() -> list[tuple[str, str, int]]:
    text = (resources.files("flowviz.bpf") / "fv_events.h").read_text()
    snap = int(re.search(r"#define FV_SNAP (\d+)", text).group(1))
    body = re.search(r"struct fv_event \{(.*?)\};", text, re.S).group(1)
    out = []
    for ctype, name, count in re.findall(r"(__u64|__u32|__u16|__u8|char)\s+(\w+)(?:\[(\w+)\])?;", body):
        n = int(count) if count.isdigit() else (snap if count else 1)
        out.append((name, C_TYPES[ctype], n))
    return out


def test_python_mirror_matches_the_header():
    fields = header_fields()
    assert tuple(name for name, _, _ in fields) == FV_EVENT_FIELDS
    fmt = "<" + "".join(f"{n}s" if code in "sB" and n > 1 else code * n for _, code, n in fields)
    assert struct.calcsize(fmt) == FV_EVENT.size
    pattern = bytes(range(256))[: FV_EVENT.size]
    assert struct.unpack(fmt, pattern) == FV_EVENT.unpack(pattern)


def test_the_head_of_a_record_is_the_events_fields_before_its_bytes():
    from flowviz.sources.records import FV_HEAD
    text = (resources.files("flowviz.bpf") / "fv_events.h").read_text()
    head = int(re.search(r"#define FV_EVENT_HEAD (\d+)", text).group(1))
    assert FV_HEAD.size == head == FV_EVENT.size - int(re.search(r"#define FV_SNAP (\d+)", text).group(1))
    pattern = bytes(range(256))[: FV_EVENT.size]
    assert FV_HEAD.unpack_from(pattern) == FV_EVENT.unpack(pattern)[:-1]


def test_a_record_becomes_the_hopevent_its_fields_say():
    """Records.convert builds a HopEvent through tuple.__new__, every field by position: each must land
    where its name says (compared with the HopEvent built from keywords)."""
    from flowviz.model import HopEvent
    from flowviz.sources.records import FV_EV_GAP, Records

    class Names:
        def label(self, inode):
            return ("web", "bridge") if inode == 7 else ("?", None)

    records = Records(1000, Names(), {5: "NETFILTER_DROP"})
    raw = FV_EVENT.pack(1, 0xABC, 7, 2, 60, 0x11E, 5, 3, 4, 4, 1, 0, FV_EV_GAP, b"", b"eth0", b"abcdef")
    assert records.convert(raw) == HopEvent(
        ts_ns=1001, ifname="eth0", dir="drop", data=b"abcd", linktype=1, length=60, netns="web", netns_id=7,
        ifindex=2, hook="kfree_skb", skb=0xABC, mark=0x11E, drop_reason="NETFILTER_DROP", cpu=3, comment=None,
        mode="bridge", notes=(), gap=True)
