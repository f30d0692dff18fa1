"""tcpdump filter expressions (``tcp port 20229 and host 10.255.0.33``), compiled by libpcap and run
over each frame as tcpdump runs them, so an expression selects the packets tcpdump would select.

libpcap is the distribution's (libpcap0.8), reached through ctypes: ``pcap_compile`` on a dead
handle of the frame's link type, then ``pcap_offline_filter`` per frame. A frame that carries a
VXLAN-wrapped one matches if either does (the inner frame is Ethernet): tcpdump itself would need
an offset-laden expression to look inside.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

from .errors import BadInput, MissingFeature
from .model import (LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
                    LINKTYPE_NULL, LINKTYPE_RAW, Frame)

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
SNAPLEN = 262144

#: LINKTYPE_ (files) → DLT_ (libpcap's handles); they differ only for raw IP
_DLT = {LINKTYPE_ETHERNET: 1, LINKTYPE_RAW: 12, LINKTYPE_NULL: 0, LINKTYPE_LINUX_SLL: 113,
        LINKTYPE_LINUX_SLL2: 276, LINKTYPE_IPV4: 228, LINKTYPE_IPV6: 229}


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("caplen", ctypes.c_uint32),
                ("len", ctypes.c_uint32)]


_lib: Optional[ctypes.CDLL] = None


def _libpcap() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise MissingFeature("filter expressions need libpcap: apt-get install libpcap0.8") from None
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_Program), ctypes.POINTER(_PktHdr), ctypes.c_char_p]
        lib.pcap_offline_filter.restype = ctypes.c_int
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


class Expression:
    """One expression, compiled once per link type it meets."""

    def __init__(self, text: str):
        self.text = text
        if "protochain" in text.split():
            # a loop over IPv6 extension headers: libpcap's interpreter runs it, but the kernel's
            # verifier takes no such program, and follow and replay must select the same packets
            raise BadInput(f"filter {text!r}: protochain is not supported (its loop cannot run in the kernel)")
        self._programs: dict[int, Optional[_Program]] = {}
        self.program(LINKTYPE_ETHERNET)   # a bad expression fails now, before anything is read or attached

    def program(self, linktype: int) -> Optional[_Program]:
        """The program for frames of ``linktype``; None where the expression cannot be said for it
        (``vlan`` on a loopback capture): such frames do not match."""
        if linktype in self._programs:
            return self._programs[linktype]
        try:
            prog = self._compile(linktype)
        except BadInput:
            if linktype == LINKTYPE_ETHERNET:
                raise
            prog = None
        self._programs[linktype] = prog
        return prog

    def _compile(self, linktype: int) -> _Program:
        lib = _libpcap()
        dlt = _DLT.get(linktype)
        if dlt is None:
            raise BadInput(f"filter {self.text!r}: link type {linktype} is not one flowviz filters")
        handle = lib.pcap_open_dead(dlt, SNAPLEN)
        if not handle:
            raise MissingFeature("libpcap could not make a handle to compile filters with")
        try:
            prog = _Program()
            if lib.pcap_compile(handle, ctypes.byref(prog), self.text.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
                said = (lib.pcap_geterr(handle) or b"").decode("utf-8", "replace")
                raise BadInput(f"filter {self.text!r}: {said}")
        finally:
            lib.pcap_close(handle)
        return prog

    def matches_bytes(self, data: bytes, linktype: int, wire_len: int = 0) -> bool:
        """tcpdump's verdict on this one frame."""
        prog = self.program(linktype)
        if prog is None:
            return False
        hdr = _PktHdr(0, 0, len(data), max(wire_len, len(data)))
        return _libpcap().pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr), data) != 0

    def matches(self, data: bytes, linktype: int, wire_len: int, frame: Frame) -> bool:
        """The frame, or one it carries in VXLAN (the decoder keeps those bytes as the payload)."""
        if self.matches_bytes(data, linktype, wire_len):
            return True
        f: Optional[Frame] = frame
        while f is not None and f.vxlan is not None and f.inner is not None:
            if self.matches_bytes(f.payload, LINKTYPE_ETHERNET):
                return True
            f = f.inner
        return False

    def instructions(self, linktype: int = LINKTYPE_ETHERNET) -> list[tuple[int, int, int, int]]:
        """The classic BPF program libpcap made: (code, jt, jf, k) each."""
        prog = self.program(linktype)
        assert prog is not None
        insns = ctypes.cast(prog.bf_insns, ctypes.POINTER(_Insn * prog.bf_len)).contents
        return [(i.code, i.jt, i.jf, i.k) for i in insns]

    def kernel_c(self, name: str = "fv_expr") -> str:
        """The program as C for the tracer (flowviz.sources.live), run on a frame's Ethernet header."""
        insns = self.instructions(LINKTYPE_ETHERNET)
        if len(insns) > MAX_KERNEL_INSNS:
            raise BadInput(f"filter {self.text!r}: {len(insns)} classic BPF instructions, more than the "
                           f"{MAX_KERNEL_INSNS} flowviz puts in the kernel")
        return classic_to_c(insns, name, self.text)

    def close(self) -> None:
        for prog in self._programs.values():
            if prog is not None:
                _libpcap().pcap_freecode(ctypes.byref(prog))
        self._programs.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown: the library may be gone already
            pass


MAX_KERNEL_INSNS = 256   # classic instructions per expression; each becomes a few dozen eBPF ones

# classic BPF (linux/filter.h, pcap/bpf.h)
_LD, _LDX, _ST, _STX, _ALU, _JMP, _RET, _MISC = range(8)
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MEM, _LEN, _MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
_ALU_OPS = {0x00: "+", 0x10: "-", 0x20: "*", 0x30: "/", 0x40: "|", 0x50: "&", 0x60: "<<", 0x70: ">>",
            0x90: "%", 0xA0: "^"}
_NEG = 0x80
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_X = 0x08   # the operand is X, not k


def _load(size: int, at: str) -> list[str]:
    """C that loads ``size`` bytes at packet offset ``at`` into v (network order), or rejects."""
    c_type, swap = {4: ("__u32", "__builtin_bswap32"), 2: ("__u16", "__builtin_bswap16"), 1: ("__u8", "")}[size]
    return [f"off = {at};",
            f"if (off > len || len - off < {size}) return 0;",
            f"{{ {c_type} t = 0; if (bpf_probe_read_kernel(&t, {size}, pkt + off) != 0) return 0; "
            f"v = {swap}(t); }}"]


def _insn_c(i: int, code: int, jt: int, jf: int, k: int) -> list[str]:
    cls = code & 0x07
    size = {_W: 4, _H: 2, _B: 1}.get(code & 0x18, 4)
    mode = code & 0xE0
    if cls in (_LD, _LDX):
        reg = "A" if cls == _LD else "X"
        if mode == _IMM:
            return [f"{reg} = {k}U;"]
        if mode == _LEN:
            return [f"{reg} = wirelen;"]
        if mode == _MEM:
            return [f"{reg} = M[{k & 15}];"]
        if cls == _LDX and mode == _MSH:
            return _load(1, f"{k}U") + ["X = (v & 0xf) << 2;"]
        if mode in (_ABS, _IND):
            at = f"{k}U" if mode == _ABS else f"X + {k}U"
            return _load(size, at) + [f"{reg} = v;"]
    elif cls == _ST:
        return [f"M[{k & 15}] = A;"]
    elif cls == _STX:
        return [f"M[{k & 15}] = X;"]
    elif cls == _ALU:
        op = code & 0xF0
        if op == _NEG:
            return ["A = -A;"]
        src = "X" if code & _X else f"{k}U"
        sym = _ALU_OPS.get(op)
        if sym is not None:
            if sym in ("/", "%"):
                return [f"if ({src} == 0) return 0;", f"A = A {sym} {src};"]
            if sym in ("<<", ">>"):
                return [f"A = {src} < 32 ? A {sym} {src} : 0;"]
            return [f"A = A {sym} {src};"]
    elif cls == _JMP:
        op = code & 0xF0
        if op == _JA:
            return [f"goto I{i + 1 + k};"]
        src = "X" if code & _X else f"{k}U"
        test = {_JEQ: f"A == {src}", _JGT: f"A > {src}", _JGE: f"A >= {src}", _JSET: f"A & {src}"}.get(op)
        if test is not None:
            return [f"if ({test}) goto I{i + 1 + jt};", f"goto I{i + 1 + jf};"]
    elif cls == _RET:
        return ["return A != 0;"] if code & 0x18 == 0x10 else [f"return {1 if k else 0};"]
    elif cls == _MISC:
        return ["X = A;"] if code & 0xF8 == 0x00 else ["A = X;"]
    raise BadInput(f"classic BPF instruction {code:#06x} at {i} is not one flowviz translates")


def classic_to_c(insns: list[tuple[int, int, int, int]], name: str, text: str) -> str:
    """A classic BPF program as one C function: a label per instruction, forward gotos only (classic
    BPF has no backward jumps), so the verifier sees no loop. ``pkt`` points at the frame's first
    byte in the kernel, ``len`` bytes of it are readable; a load past them rejects, as in the kernel's
    own classic BPF."""
    body = []
    for i, (code, jt, jf, k) in enumerate(insns):
        body.append(f"I{i}:")
        body += [f"    {line}" for line in _insn_c(i, code, jt, jf, k)]
    comment = text.replace("*/", "* /")
    return "\n".join([
        f"/* flowviz: the filter expression '{comment}', {len(insns)} classic BPF instructions from libpcap */",
        f"static __always_inline int {name}(unsigned char *pkt, __u32 len, __u32 wirelen)",
        "{",
        "    __u32 A = 0, X = 0, v = 0, off = 0;",
        "    __u32 M[16] = {};",
        *body,
        "    return 0;",
        "}",
        "",
    ])
