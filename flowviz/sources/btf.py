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
from ..paths import FLOWVIZ_RUN as CACHE_DIR

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

    def __init__(self, data: bytes, base: Optional["BTF"] = None):
        """``base``: for a module's split BTF (/sys/kernel/btf/<module>), the vmlinux BTF its
        type ids and string offsets continue from."""
        if len(data) < 24:
            raise MissingFeature("BTF blob too short")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise MissingFeature("not a BTF blob (bad magic)")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.data = data
        self.base = base
        self.types_at = hdr_len + type_off
        self.strs_at = hdr_len + str_off
        self.strs_end = self.strs_at + str_len
        self.str_base = base.str_base + base.strs_end - base.strs_at if base else 0
        self.first_id = base.ntypes if base else 1
        # offset of every type record of this blob, by type id - first_id
        self.offsets: list[int] = []
        self.by_name: dict[str, list[int]] = {}
        off, end = self.types_at, self.types_at + type_len
        unpack = struct.unpack_from
        while off < end:
            name_off, info = unpack("<II", data, off)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            tid = self.first_id + len(self.offsets)
            self.offsets.append(off)
            if kind in (KIND_STRUCT, KIND_UNION) and name_off:
                self.by_name.setdefault(self._str(name_off), []).append(tid)
            off += 12 + _FIXED.get(kind, 0) + _PER_ITEM.get(kind, 0) * vlen

    @property
    def ntypes(self) -> int:
        """The first type id after this blob's (where a split BTF on top of it starts)."""
        return self.first_id + len(self.offsets)

    def _str(self, off: int) -> str:
        if off < self.str_base:
            return self.base._str(off)
        start = self.strs_at + off - self.str_base
        end = self.data.index(b"\0", start, self.strs_end)
        return self.data[start:end].decode()

    def _rec(self, tid: int) -> tuple[bytes, int]:
        """(blob, byte offset) of a type record, in this BTF or its base."""
        if tid < self.first_id:
            return self.base._rec(tid)
        return self.data, self.offsets[tid - self.first_id]

    def _type(self, tid: int) -> tuple[int, int, int, int, int]:
        """(name_off, kind, vlen, kind_flag, size_or_type) of a type id."""
        data, off = self._rec(tid)
        name_off, info, st = struct.unpack_from("<III", data, off)
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
            data, off = self._rec(tid)
            elem, _, nelems = struct.unpack_from("<III", data, off + 12)
            return self._size(elem) * nelems
        return 0

    def struct_id(self, name: str) -> int:
        """The type id of a complete struct (or union) of this name."""
        for tid in self.by_name.get(name, []):
            if self._type(tid)[2] > 0:   # has members: not an empty forward form
                return tid
        if self.base is not None:
            return self.base.struct_id(name)
        raise MissingFeature(f"the kernel's BTF has no struct {name}")

    def _find(self, tid: int, name: str) -> Optional[tuple[int, int]]:
        """(bit offset, member type id) of ``name`` in struct/union tid, looking into anonymous members."""
        _, kind, vlen, kflag, _ = self._type(tid)
        if kind not in (KIND_STRUCT, KIND_UNION):
            return None
        data, base = self._rec(tid)
        base += 12
        for i in range(vlen):
            m_name, m_type, m_off = struct.unpack_from("<III", data, base + 12 * i)
            bit_off = m_off & 0xFFFFFF if kflag else m_off
            if m_name and self._str(m_name) == name:
                return bit_off, m_type
            if not m_name:   # anonymous struct/union: its members belong to us
                inner = self._find(self._resolve(m_type), name)
                if inner is not None:
                    return bit_off + inner[0], inner[1]
        return None

    def member(self, struct_name: str, path: str) -> Member:
        """Offset and size of ``path`` ("nd_net.net", "ns.inum", "tuplehash[1].tuple") inside
        ``struct struct_name``."""
        tid = self.struct_id(struct_name)
        bits = 0
        for part in path.split("."):
            name, _, index = part.partition("[")
            found = self._find(self._resolve(tid), name)
            if found is None:
                raise MissingFeature(f"the kernel's struct {struct_name} has no member {path}")
            bits += found[0]
            tid = found[1]
            if index:   # an array element: the element type, so many elements in
                data, off = self._rec(self._resolve(tid))
                if self._type(self._resolve(tid))[1] != KIND_ARRAY:
                    raise MissingFeature(f"{struct_name}.{path}: {name} is not an array")
                tid = struct.unpack_from("<I", data, off + 12)[0]
                bits += int(index.rstrip("]")) * self._size(tid) * 8
        if bits % 8:
            raise MissingFeature(f"{struct_name}.{path} is a bitfield")
        return Member(bits // 8, self._size(tid))


#: what the tracer reads: macro name → (struct, member path, size the C code assumes or 0)
FIELDS = {
    "SKB_LEN": ("sk_buff", "len", 4),
    "SKB_DATA_LEN": ("sk_buff", "data_len", 4),
    "SKB_DATA": ("sk_buff", "data", 8),
    "SKB_HEAD": ("sk_buff", "head", 8),
    "SKB_MAC_HEADER": ("sk_buff", "mac_header", 2),
    "SKB_NETWORK_HEADER": ("sk_buff", "network_header", 2),
    "SKB_TRANSPORT_HEADER": ("sk_buff", "transport_header", 2),
    "SKB_PROTOCOL": ("sk_buff", "protocol", 2),
    "SKB_MARK": ("sk_buff", "mark", 4),
    "SKB_DEV": ("sk_buff", "dev", 8),
    "DEV_IFINDEX": ("net_device", "ifindex", 4),
    "DEV_NAME": ("net_device", "name", 16),
    "DEV_ND_NET": ("net_device", "nd_net.net", 8),
    "NET_INUM": ("net", "ns.inum", 4),
}

BTF_DIR = "/sys/kernel/btf"


def kernel_offsets(path: str = VMLINUX_BTF) -> dict[str, int]:
    """Byte offsets of every field in FIELDS, from the running kernel (cached per boot)."""
    return struct_offsets(FIELDS, None, vmlinux=path)


def struct_offsets(fields: dict[str, tuple[str, str, int]], module: Optional[str], *,
                   vmlinux: str = VMLINUX_BTF) -> dict[str, int]:
    """Byte offsets of ``fields`` (macro → (struct, member path, expected size or 0)).

    With ``module``, its split BTF (/sys/kernel/btf/<module>, present while the module is
    loaded) is searched first, then vmlinux: a module's private structs (``ip_vs_conn``,
    ``vxlan_rdst``) are only there. Results are cached per kernel release and BTF size.
    Raises MissingFeature naming what is missing."""
    try:
        st = os.stat(vmlinux)
    except OSError:
        raise MissingFeature(f"no kernel BTF at {vmlinux}: the kernel needs CONFIG_DEBUG_INFO_BTF=y") from None
    mpath = os.path.join(BTF_DIR, module) if module else None
    key = f"{os.uname().release}-{st.st_size}"
    if mpath:
        try:
            key += f"-{module}-{os.stat(mpath).st_size}"
        except OSError:
            raise MissingFeature(f"module {module} is not loaded (no {mpath})") from None
    cache = os.path.join(CACHE_DIR, f"btf-offsets-{key}.json")
    try:
        with open(cache) as f:
            cached = json.load(f)
        if set(cached) == set(fields):
            return cached
    except (OSError, ValueError):
        pass
    btf = _load(vmlinux)
    if mpath:
        with open(mpath, "rb") as f:
            btf = BTF(f.read(), base=btf)
    out = {}
    for macro, (sname, member, want) in fields.items():
        m = btf.member(sname, member)
        if want and m.size and m.size != want:
            raise MissingFeature(f"{sname}.{member} is {m.size} bytes on this kernel, flowviz expects {want}")
        out[macro] = m.offset
    try:
        os.makedirs(CACHE_DIR, exist_ok=True)
        with open(cache, "w") as f:
            json.dump(out, f)
    except OSError:
        pass   # not root, or a read-only /run: no cache, same answer
    return out


_loaded: dict[str, BTF] = {}


def _load(path: str) -> BTF:
    """vmlinux BTF, parsed once per process (several hooks' offsets come from it)."""
    if path not in _loaded:
        with open(path, "rb") as f:
            _loaded[path] = BTF(f.read())
    return _loaded[path]
