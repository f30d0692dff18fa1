"""The BTF reader on hand-made blobs: members through anonymous unions, and a module's split BTF
whose type ids and strings continue from vmlinux's (how ip_vs_conn and vxlan_rdst are found)."""

from __future__ import annotations

import struct

import pytest

from flowviz.errors import MissingFeature
from flowviz.sources.btf import BTF, KIND_ARRAY, KIND_INT, KIND_PTR, KIND_STRUCT, KIND_UNION


class Blob:
    """A minimal BTF writer: types are (name, kind, vlen, size_or_type, extra bytes)."""

    def __init__(self, first_id: int = 1, str_base: int = 0, strings: bytes = b"\0"):
        self.types = b""
        self.strings = strings if str_base == 0 else b""
        self.str_base = str_base
        self.next_id = first_id

    def s(self, text: str) -> int:
        if not text:
            return 0
        off = self.str_base + len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def add(self, name_off: int, kind: int, vlen: int, size_or_type: int, extra: bytes = b"") -> int:
        self.types += struct.pack("<III", name_off, (kind << 24) | vlen, size_or_type) + extra
        tid, self.next_id = self.next_id, self.next_id + 1
        return tid

    def int_type(self, name: str, size: int) -> int:
        return self.add(self.s(name), KIND_INT, 0, size, struct.pack("<I", size * 8))

    def struct(self, name: str, size: int, members, kind=KIND_STRUCT) -> int:
        extra = b"".join(struct.pack("<III", self.s(m), t, off * 8) for m, t, off in members)
        return self.add(self.s(name), kind, len(members), size, extra)

    def bytes(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings))
        return hdr + self.types + self.strings


def vmlinux() -> tuple[BTF, Blob]:
    b = Blob()
    u16 = b.int_type("u16", 2)
    u32 = b.int_type("u32", 4)
    anon = b.struct("", 4, [("skc_dport", u16, 0), ("skc_num", u16, 2)], kind=KIND_UNION)
    b.struct("sock_common", 16, [("skc_hash", u32, 0), ("", anon, 12)])
    b.add(0, KIND_PTR, 0, u32)
    return BTF(b.bytes()), b


def test_members_inside_anonymous_members():
    btf, _ = vmlinux()
    m = btf.member("sock_common", "skc_num")
    assert (m.offset, m.size) == (14, 2)
    with pytest.raises(MissingFeature, match="no member nope"):
        btf.member("sock_common", "nope")


def test_a_module_split_btf_continues_vmlinux_ids_and_strings():
    base, bb = vmlinux()
    mod = Blob(first_id=base.ntypes, str_base=len(bb.strings))
    u32 = 2   # vmlinux's type id: a module refers to base types by their ids
    ptr = 5
    mod.struct("ip_vs_conn", 24, [("cport", u32, 16), ("dest", ptr, 8)])
    # a name already in vmlinux's strings is referred to by its offset there
    mod.add(bb.strings.index(b"u16\0"), KIND_INT, 0, 2, struct.pack("<I", 16))
    btf = BTF(mod.bytes(), base=base)
    assert btf.member("ip_vs_conn", "cport").offset == 16
    assert btf.member("ip_vs_conn", "dest").size == 8
    assert btf.member("sock_common", "skc_num").offset == 14   # found in the base
    assert btf._str(bb.strings.index(b"u16\0")) == "u16"


def test_array_elements_in_a_member_path():
    """nf_conn.tuplehash[2]: the reply tuple is read at tuplehash[1].tuple."""
    b = Blob()
    u32 = b.int_type("u32", 4)
    u64 = b.int_type("u64", 8)
    th = b.struct("tuple_hash", 16, [("node", u64, 0), ("tuple", u32, 8)])
    arr = b.add(0, KIND_ARRAY, 0, 0, struct.pack("<III", th, u32, 2))
    b.struct("conn", 40, [("status", u64, 0), ("tuplehash", arr, 8)])
    btf = BTF(b.bytes())
    assert btf.member("conn", "tuplehash[0].tuple").offset == 16
    assert btf.member("conn", "tuplehash[1].tuple").offset == 32
    assert btf.member("conn", "tuplehash").size == 32
    with pytest.raises(MissingFeature, match="not an array"):
        btf.member("conn", "status[1]")
