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
        self._programs: dict[int, _Program] = {}
        self.program(LINKTYPE_ETHERNET)   # a bad expression fails now, before anything is read or attached

    def program(self, linktype: int) -> _Program:
        prog = self._programs.get(linktype)
        if prog is None:
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
            self._programs[linktype] = prog
        return prog

    def matches_bytes(self, data: bytes, linktype: int, wire_len: int = 0) -> bool:
        """tcpdump's verdict on this one frame."""
        prog = self.program(linktype)
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

    def close(self) -> None:
        for prog in self._programs.values():
            _libpcap().pcap_freecode(ctypes.byref(prog))
        self._programs.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:   # interpreter shutdown: the library may be gone already
            pass
