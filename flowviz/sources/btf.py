"""Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The live tracer reads sk_buff, net_device and net fields at these offsets
(passed to the BPF C as ``-D`` macros), so it needs no kernel headers and no
header that matches the running kernel — the usual reason bcc tools fail.
Anonymous struct/union members are flattened: ``sk_buff.dev`` sits inside
two anonymous levels on 6.x kernels and is found all the same.

Format: Documentation/bpf/btf.rst (a header, a type section, a string
section; each type record followed by kind-specific data).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Optional

from ..errors import MissingFeature

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F

KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC = 9, 10, 11, 12, 13, 14, 15
KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 16, 17, 18, 19
# bytes of kind-specific data after a type record: fixed, or per vlen item
_FIXED = {KIND_INT: 4, KIND_ARRAY: 12, KIND_VAR: 4, KIND_DECL_TAG: 4}
_PER_ITEM = {KIND_STRUCT: 12, KIND_UNION: 12, KIND_ENUM: 8, KIND_FUNC_PROTO: 8, KIND_DATASEC: 12, KIND_ENUM64: 12}
_MODIFIERS = {KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}


@dataclass(frozen=True, slots=True)
class Member:
    offset: int   #: bytes from the start of the outermost struct asked about
    size: int     #: bytes (0 when unknown, e.g. a bitfield)


class BTF:
    """The type section of a BTF blob, indexed enough to look members up."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise MissingFeature("BTF blob too short")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise MissingFeature("not a BTF blob (bad magic)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.data = data
        self.types_at = hdr_len + type_off
        self.strs_at = hdr_len + str_off
        self.strs_end = self.strs_at + str_len
        # offset of every type record, by type id (ids start at 1)
        self.offsets = [0]
        self.by_name: dict[str, list[int]] = {}
        off, end = self.types_at, self.types_at + type_len
        unpack = struct.unpack_from
        while off < end:
            name_off, info = unpack("<II", data, off)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            tid = len(self.offsets)
            self.offsets.append(off)
            if kind in (KIND_STRUCT, KIND_UNION) and name_off:
                self.by_name.setdefault(self._str(name_off), []).append(tid)
            off += 12 + _FIXED.get(kind, 0) + _PER_ITEM.get(kind, 0) * vlen

    def _str(self, off: int) -> str:
        start = self.strs_at + off
        end = self.data.index(b"\0", start, self.strs_end)
        return self.data[start:end].decode()

    def _type(self, tid: int) -> tuple[int, int, int, int, int]:
        """(name_off, kind, vlen, kind_flag, size_or_type) of a type id."""
        name_off, info, st = struct.unpack_from("<III", self.data, self.offsets[tid])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, st

    def _resolve(self, tid: int) -> int:
        """Strip typedefs, const, volatile and friends."""
        for _ in range(32):
            _, kind, _, _, st = self._type(tid)
            if kind not in _MODIFIERS:
                return tid
            tid = st
        return tid

    def _size(self, tid: int) -> int:
        tid = self._resolve(tid)
        _, kind, _, _, st = self._type(tid)
        if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return st
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _, nelems = struct.unpack_from("<III", self.data, self.offsets[tid] + 12)
            return self._size(elem) * nelems
        return 0

    def struct_id(self, name: str) -> int:
        """The type id of a complete struct (or union) of this name."""
        for tid in self.by_name.get(name, []):
            if self._type(tid)[2] > 0:   # has members: not an empty forward form
                return tid
        raise MissingFeature(f"the kernel's BTF has no struct {name}")

    def _find(self, tid: int, name: str) -> Optional[tuple[int, int]]:
        """(bit offset, member type id) of ``name`` in struct/union tid, looking into anonymous members."""
        _, kind, vlen, kflag, _ = self._type(tid)
        if kind not in (KIND_STRUCT, KIND_UNION):
            return None
        base = self.offsets[tid] + 12
        for i in range(vlen):
            m_name, m_type, m_off = struct.unpack_from("<III", self.data, base + 12 * i)
            bit_off = m_off & 0xFFFFFF if kflag else m_off
            if m_name and self._str(m_name) == name:
                return bit_off, m_type
            if not m_name:   # anonymous struct/union: its members belong to us
                inner = self._find(self._resolve(m_type), name)
                if inner is not None:
                    return bit_off + inner[0], inner[1]
        return None

    def member(self, struct_name: str, path: str) -> Member:
        """Offset and size of ``path`` ("nd_net.net", "ns.inum") inside ``struct struct_name``."""
        tid = self.struct_id(struct_name)
        bits = 0
        for part in path.split("."):
            found = self._find(self._resolve(tid), part)
            if found is None:
                raise MissingFeature(f"the kernel's struct {struct_name} has no member {path}")
            bits += found[0]
            tid = found[1]
        if bits % 8:
            raise MissingFeature(f"{struct_name}.{path} is a bitfield")
        return Member(bits // 8, self._size(tid))


#: what the tracer reads: macro name → (struct, member path)
FIELDS = {
    "SKB_LEN": ("sk_buff", "len"),
    "SKB_DATA_LEN": ("sk_buff", "data_len"),
    "SKB_DATA": ("sk_buff", "data"),
    "SKB_HEAD": ("sk_buff", "head"),
    "SKB_MAC_HEADER": ("sk_buff", "mac_header"),
    "SKB_NETWORK_HEADER": ("sk_buff", "network_header"),
    "SKB_PROTOCOL": ("sk_buff", "protocol"),
    "SKB_MARK": ("sk_buff", "mark"),
    "SKB_DEV": ("sk_buff", "dev"),
    "DEV_IFINDEX": ("net_device", "ifindex"),
    "DEV_NAME": ("net_device", "name"),
    "DEV_ND_NET": ("net_device", "nd_net.net"),
    "NET_INUM": ("net", "ns.inum"),
}
#: sizes the C code assumes; a kernel that differs is refused rather than misread
EXPECTED_SIZES = {"SKB_LEN": 4, "SKB_DATA_LEN": 4, "SKB_DATA": 8, "SKB_HEAD": 8, "SKB_MAC_HEADER": 2, "SKB_NETWORK_HEADER": 2,
                  "SKB_PROTOCOL": 2, "SKB_MARK": 4, "SKB_DEV": 8, "DEV_IFINDEX": 4, "DEV_NAME": 16,
                  "DEV_ND_NET": 8, "NET_INUM": 4}

CACHE_DIR = "/run/flowviz"


def kernel_offsets(path: str = VMLINUX_BTF) -> dict[str, int]:
    """Byte offsets of every field in FIELDS, from the running kernel (cached per boot)."""
    try:
        st = os.stat(path)
    except OSError:
        raise MissingFeature(f"no kernel BTF at {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y") from None
    cache = os.path.join(CACHE_DIR, f"btf-offsets-{os.uname().release}-{st.st_size}.json")
    try:
        with open(cache) as f:
            cached = json.load(f)
        if set(cached) == set(FIELDS):
            return cached
    except (OSError, ValueError):
        pass
    with open(path, "rb") as f:
        btf = BTF(f.read())
    out = {}
    for macro, (sname, mpath) in FIELDS.items():
        m = btf.member(sname, mpath)
        want = EXPECTED_SIZES[macro]
        if m.size and m.size != want:
            raise MissingFeature(f"{sname}.{mpath} is {m.size} bytes on this kernel, flowviz expects {want}")
        out[macro] = m.offset
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        with open(cache, "w") as f:
            json.dump(out, f)
    except OSError:
        pass   # not root, or a read-only /run: no cache, same answer
    return out
