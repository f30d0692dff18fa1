"""Reading and writing pcap and pcapng files.

Readers yield :class:`Record` s and raise :class:`~flowviz.errors.BadCapture`
at the first thing they cannot read, after yielding every record before it
(``partial`` tells the caller whether any were). Handled: pcap in µs and ns
resolution and either byte order; pcapng with several sections, several
interfaces (name, description, link type, if_tsresol, if_tsoffset), enhanced,
simple and obsolete packet blocks, packet comments and epb_flags direction.

The writer makes the pcapng files flowviz records (``follow --write``) and the
sample captures: one interface per device, hop metadata in packet comments.

Why not scapy's readers: not speed (scripts/bench-replay shows RawPcapNgReader
reading a little faster than this reader plus the HopEvent it feeds), but what
replay needs from a damaged file: every packet before the damage delivered,
then one error naming the byte where it is; and each interface's name,
description, if_tsresol and if_tsoffset, and the packets' epb_flags.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Final, Iterator, NamedTuple, Optional
from urllib.parse import quote

from .errors import BadCapture
from .gcuntrack import record
from .model import KNOWN_LINKTYPES
from .sanitize import safe

# (Final: compiled (flowviz/native.py), a module-level name not declared Final is looked up in the
# module's dict at every use, a tenth of reading a record; a Final one is a constant or a C variable.)
PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAPNG_SHB: Final = 0x0A0D0D0A
PCAPNG_BOM: Final = 0x1A2B3C4D
BT_IDB: Final = 1
BT_SPB: Final = 3
BT_EPB: Final = 6
BT_OPB: Final = 2

OPT_END: Final = 0
OPT_COMMENT: Final = 1
IF_NAME: Final = 2
IF_DESCRIPTION: Final = 3
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14
EPB_FLAGS: Final = 2

# A record longer than this is not a packet but a corrupt length field.
MAX_RECORD: Final = 256 * 1024 * 1024
MAX_SNAPLEN: Final = 262144
MAX_TS_NS: Final = 1 << 63   # nanoseconds since 1970 that fit in 64 bits: until the year 2262

DIR_FROM_FLAGS: Final = {1: "rx", 2: "tx"}
FLAGS_FROM_DIR: Final = {"rx": 1, "tx": 2}


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface (a pcapng IDB, or the single one of a pcap)."""

    index: int
    linktype: int
    name: Optional[str] = None
    description: Optional[str] = None
    snaplen: int = 0


class Record(NamedTuple):
    ts_ns: int
    iface: Interface
    data: bytes
    orig_len: int
    comment: Optional[str] = None
    direction: Optional[str] = None   # "rx"/"tx" from epb_flags, when present


#: ``Record(...)`` without the NamedTuple's constructor, which is Python code (compiled, the call into
#: the interpreter was most of a record's cost): every field given, in Record's order
_record: Final = record


def read_capture(path: str, stream: Optional[BinaryIO] = None) -> Iterator[Record]:
    """Yield every record of a pcap or pcapng file, in file order.

    It reads as it goes, a block at a time, so a pipe, a FIFO or standard input (``stream``,
    already open) is read as it arrives and each record comes out as soon as its bytes are in.
    """
    if stream is not None:
        yield from _read_stream(path, stream)
        return
    try:
        f = open(path, "rb", buffering=READ_BUFFER)
    except OSError as e:
        raise BadCapture(path, e.strerror or str(e)) from None
    with f:
        yield from _read_stream(path, f)


READ_BUFFER: Final = 1 << 20


def _read_stream(path: str, f: BinaryIO) -> Iterator[Record]:
    head = f.read(4)
    if len(head) == 0:
        raise BadCapture(path, "empty file, not a capture" if _regular(f) else
                         "the input ended before any capture came in")
    if len(head) < 4:
        raise BadCapture(path, "too short to be a capture")
    magic_le = struct.unpack_from("<I", head, 0)[0]
    if magic_le == PCAPNG_SHB:
        yield from _read_pcapng(path, f, head)
    elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        yield from _read_pcap(path, f, head, "<")
    elif struct.unpack_from(">I", head, 0)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        yield from _read_pcap(path, f, head, ">")
    else:
        raise BadCapture(path, f"not a pcap or pcapng file (starts with {head!r})")


def _regular(f: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _read_pcap(path: str, f: BinaryIO, head: bytes, bo: str) -> Iterator[Record]:
    fh = head + f.read(20)
    if len(fh) < 24:
        raise BadCapture(path, "truncated pcap file header")
    magic, _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack_from(bo + "IHHiIII", fh, 0)
    linktype = network & 0xFFFF
    if linktype not in KNOWN_LINKTYPES:
        raise BadCapture(path, f"link type {linktype} is not one flowviz can decode")
    iface = Interface(0, linktype, None, None, snaplen)
    scale = 1 if magic == PCAP_MAGIC_NS else 1000
    limit = max(snaplen, MAX_SNAPLEN)
    header: Callable[[bytes], tuple] = struct.Struct(bo + "IIII").unpack   # bound once, as _Formats
    read = f.read
    off, count = 24, 0
    while True:
        rh = read(16)
        if not rh:
            return
        if len(rh) < 16:
            raise BadCapture(path, f"truncated record header after packet {count} (byte {off})", partial=count > 0)
        sec, frac, incl, orig = header(rh)
        if incl > limit:
            raise BadCapture(path, f"record {count + 1} claims {incl} bytes, more than the snapshot length {snaplen}",
                             partial=count > 0)
        data = read(incl)
        if len(data) < incl:
            raise BadCapture(path, f"truncated packet {count + 1} (byte {off}: {incl} bytes announced, "
                                   f"{len(data)} left)", partial=count > 0)
        count += 1
        yield _record(Record, sec * 1_000_000_000 + frac * scale, iface, data, orig, None, None)
        off += 16 + incl


class _Formats:
    """The block formats of one byte order, compiled once (struct.unpack_from with a format string
    looks it up in struct's cache on every call, after the string was put together), each as its
    bound ``unpack_from``: compiled code calling a Struct's method looks the method up every time,
    which cost a tenth of reading a pcapng file."""

    def __init__(self, bo: str):
        self.u32: Callable[..., tuple] = struct.Struct(bo + "I").unpack_from
        self.hh: Callable[..., tuple] = struct.Struct(bo + "HH").unpack_from
        self.ii: Callable[..., tuple] = struct.Struct(bo + "II").unpack_from
        self.epb: Callable[..., tuple] = struct.Struct(bo + "IIIII").unpack_from
        self.opb: Callable[..., tuple] = struct.Struct(bo + "HHIIII").unpack_from


_FORMATS: Final = {"<": _Formats("<"), ">": _Formats(">")}
_LE_U32: Final = _FORMATS["<"].u32


def _options(buf, off: int, end: int, fmt: _Formats) -> list[tuple[int, bytes]]:
    """(code, value) of each option in buf[off:end], up to opt_endofopt (a list: compiled, making a
    generator for a packet's one or two options cost more than reading them)."""
    hh = fmt.hh
    out = []
    while off + 4 <= end:
        code, length = hh(buf, off)
        off += 4
        if code == OPT_END:
            break
        if off + length > end:
            break  # a broken option list: keep what came before it
        out.append((code, buf[off:off + length]))
        off += (length + 3) & ~3
    return out


def _text(value: bytes) -> str:
    return value.rstrip(b"\0").decode("utf-8", "replace")


class _Section:
    __slots__ = ("bo", "fmt", "ifaces", "units", "offsets")

    def __init__(self, bo: str):
        self.bo = bo
        self.fmt = _FORMATS[bo]
        self.ifaces: list[Interface] = []
        self.units: list[int] = []     # timestamp units per second, per interface
        self.offsets: list[int] = []   # if_tsoffset in seconds, per interface


def _read_pcapng(path: str, f: BinaryIO, head: bytes) -> Iterator[Record]:
    off, count = 0, 0
    sec: Optional[_Section] = None
    inp = _Input(f, head)

    def fail(problem: str):
        return BadCapture(path, problem, partial=count > 0)

    while True:
        # each block is parsed at offsets in the input's buffer, where it lies whole; ``off`` (where
        # it starts in the file) is only for messages
        got = _next_block(inp, off, sec, fail)
        if got is None:
            return
        sec, btype, blen = got
        buf, start = inp.buf, inp.pos
        inp.pos = start + blen
        end = start + blen - 4
        rec = None
        if btype == BT_IDB:
            _interface(sec, buf, off, start + 8, end, fail)
        elif btype == BT_EPB or btype == BT_OPB:
            rec = _packet(sec, btype, buf, off, start + 8, end, fail)
        elif btype == BT_SPB:
            rec = _simple_packet(sec, buf, off, start + 8, end, fail)
        if rec is not None:
            count += 1
            yield rec
        # every other block (statistics, name resolution, secrets, custom) is skipped
        if sec.fmt.u32(buf, end)[0] != blen:
            raise fail(f"block at byte {off}: trailing length does not match")
        off += blen


READ_CHUNK: Final = 1 << 18


class _Input:
    """A capture read a chunk at a time: ``buf[pos:]`` came in and is not parsed yet. Blocks are parsed
    where they lie in ``buf``: two reads a block and the copy joining them cost a fifth of reading a
    pcapng file (scripts/bench-replay). ``read1`` returns what is there, so a pipe's records still come
    out as soon as their bytes are in."""

    def __init__(self, f: BinaryIO, head: bytes):
        self.read = getattr(f, "read1", f.read)
        self.buf = head
        self.pos = 0

    def have(self, n: int) -> int:
        """Read until ``n`` bytes are at ``buf[pos:]``, or the input ends; how many are there. (The
        pieces are joined once: a pipe hands over 64 KiB a read, and joining as they came would copy
        a block that claims 256 MiB thousands of times.)"""
        left = len(self.buf) - self.pos
        if left >= n:
            return left
        parts = [self.buf[self.pos:]]
        while left < n:
            more = self.read(max(READ_CHUNK, n - left))
            if not more:
                break
            parts.append(more)
            left += len(more)
        self.buf = b"".join(parts)
        self.pos = 0
        return left


def _next_block(inp: _Input, off: int, sec: Optional["_Section"], fail) -> Optional[tuple["_Section", int, int]]:
    """The next block, read in whole (it starts at ``inp.pos``): the section in force (a section
    header block starts a new one), its type and its length; None at the end of the input."""
    left = inp.have(12)
    if not left:
        return None
    if left < 12:
        raise fail(f"truncated block header at byte {off}")
    buf, start = inp.buf, inp.pos
    if _LE_U32(buf, start)[0] == PCAPNG_SHB:
        bom = _LE_U32(buf, start + 8)[0]
        if bom == PCAPNG_BOM:
            sec = _Section("<")
        elif bom == 0x4D3C2B1A:
            sec = _Section(">")
        else:
            raise fail(f"bad section header byte-order magic at byte {off}")
    elif sec is None:
        raise fail("pcapng file does not start with a section header block")
    btype, blen = sec.fmt.ii(buf, start)
    if blen < 12 or blen % 4:
        raise fail(f"block at byte {off} has an impossible length {blen}")
    if blen > MAX_RECORD:
        raise fail(f"block at byte {off} claims {blen} bytes")
    left = inp.have(blen)
    if left < blen:
        raise fail(f"truncated block at byte {off} ({blen} bytes announced, {left} left)")
    return sec, btype, blen


def _interface(sec: "_Section", buf, off: int, body: int, end: int, fail) -> None:
    """An interface description block: the interface, its time unit and offset."""
    bo = sec.bo
    if end - body < 8:
        raise fail(f"short interface description block at byte {off}")
    linktype, _res, snaplen = struct.unpack_from(bo + "HHI", buf, body)
    name = desc = None
    units, tsoff = 1_000_000, 0
    for code, value in _options(buf, body + 8, end, sec.fmt):
        if code == IF_NAME:
            name = _text(value)
        elif code == IF_DESCRIPTION:
            desc = _text(value)
        elif code == IF_TSRESOL and value:
            r = value[0]
            units = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
        elif code == IF_TSOFFSET and len(value) == 8:
            tsoff = struct.unpack(bo + "q", value)[0]
    idx = len(sec.ifaces)
    if linktype not in KNOWN_LINKTYPES:
        raise fail(f"interface {idx} ({safe(name) if name else 'unnamed'}) has link type {linktype}, "
                   f"which flowviz cannot decode")
    sec.ifaces.append(Interface(idx, linktype, name, desc, snaplen))
    sec.units.append(units)
    sec.offsets.append(tsoff)


def _packet(sec: "_Section", btype: int, buf, off: int, body: int, end: int, fail) -> Record:
    """An enhanced (or obsolete) packet block, with its comments and direction flags."""
    if end - body < 20:
        raise fail(f"short packet block at byte {off}")
    if btype == BT_EPB:
        if_id, ts_hi, ts_lo, caplen, orig = sec.fmt.epb(buf, body)
    else:
        if_id, _drops, ts_hi, ts_lo, caplen, orig = sec.fmt.opb(buf, body)
    data_off = body + 20
    if if_id >= len(sec.ifaces):
        raise fail(f"packet at byte {off} names interface {if_id}, which was never described")
    if data_off + caplen > end:
        raise fail(f"packet at byte {off} claims {caplen} bytes, more than its block holds")
    comment = direction = None
    for code, value in _options(buf, data_off + ((caplen + 3) & ~3), end, sec.fmt):
        if code == OPT_COMMENT:
            comment = _text(value) if comment is None else comment + "\n" + _text(value)
        elif code == EPB_FLAGS and btype == BT_EPB and len(value) == 4:
            direction = DIR_FROM_FLAGS.get(sec.fmt.u32(value)[0] & 3)
    ts = (ts_hi << 32) | ts_lo
    units = sec.units[if_id]
    ts_ns = ts * (1_000_000_000 // units) if 1_000_000_000 % units == 0 else ts * 1_000_000_000 // units
    ts_ns += sec.offsets[if_id] * 1_000_000_000
    if not 0 <= ts_ns < MAX_TS_NS:
        raise fail(f"packet at byte {off} has a timestamp out of range (if_tsresol or if_tsoffset damaged?)")
    return _record(Record, ts_ns, sec.ifaces[if_id], buf[data_off:data_off + caplen], orig, comment, direction)


def _simple_packet(sec: "_Section", buf, off: int, body: int, end: int, fail) -> Record:
    """A simple packet block: the first interface's, no timestamp."""
    if not sec.ifaces:
        raise fail(f"simple packet block at byte {off} before any interface")
    if end - body < 4:
        raise fail(f"short simple packet block at byte {off}")
    orig = sec.fmt.u32(buf, body)[0]
    caplen = min(orig, end - body - 4, sec.ifaces[0].snaplen or orig)
    return _record(Record, 0, sec.ifaces[0], buf[body + 4:body + 4 + caplen], orig, None, None)


# --- writing ----------------------------------------------------------------

def _opt(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    blen = 12 + len(body)
    return struct.pack("<II", btype, blen) + body + struct.pack("<I", blen)


class PcapNgWriter:
    """Writes a little-endian pcapng: one section, interfaces added as met, ns timestamps."""

    def __init__(self, f: BinaryIO, *, app: str = "flowviz"):
        self.f = f
        shb = struct.pack("<IHHq", PCAPNG_BOM, 1, 0, -1) + _opt(4, app.encode()) + _opt(OPT_END, b"")
        f.write(_block(PCAPNG_SHB, shb))
        self._ifaces: dict[tuple, int] = {}

    def interface(self, name: str, linktype: int, description: Optional[str] = None,
                  snaplen: int = MAX_SNAPLEN) -> int:
        """The interface id for (name, linktype, description), described on first use."""
        key = (name, linktype, description)
        idx = self._ifaces.get(key)
        if idx is None:
            opts = _opt(IF_NAME, name.encode())
            if description:
                opts += _opt(IF_DESCRIPTION, description.encode())
            opts += _opt(IF_TSRESOL, b"\x09") + _opt(OPT_END, b"")
            self.f.write(_block(BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts))
            idx = self._ifaces[key] = len(self._ifaces)
        return idx

    def packet(self, if_id: int, ts_ns: int, data: bytes, orig_len: Optional[int] = None,
               *, direction: Optional[str] = None, comment: Optional[str] = None) -> None:
        body = struct.pack("<IIIII", if_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                           orig_len if orig_len is not None else len(data))
        body += data + b"\0" * ((-len(data)) % 4)
        opts = b""
        if comment:
            opts += _opt(OPT_COMMENT, comment.encode())
        if direction in FLAGS_FROM_DIR:
            opts += _opt(EPB_FLAGS, struct.pack("<I", FLAGS_FROM_DIR[direction]))
        if opts:
            body += opts + _opt(OPT_END, b"")
        self.f.write(_block(BT_EPB, body))

    def simple_packet(self, data: bytes, orig_len: Optional[int] = None) -> None:
        """A simple packet block: the first interface's, with no timestamp (what some tools write)."""
        body = struct.pack("<I", orig_len if orig_len is not None else len(data))
        self.f.write(_block(BT_SPB, body + data + b"\0" * ((-len(data)) % 4)))


# --- flowviz metadata in packet comments ("flowviz: key=value ...") ---------------------------

META_PREFIX = "flowviz:"
_INT_KEYS = ("skb", "mark", "netns_id", "ifindex", "cpu")


def parse_meta(comment: Optional[str]) -> tuple[dict, Optional[str]]:
    """Split a packet comment into flowviz metadata and the rest of the text."""
    if not comment:
        return {}, None
    meta: dict = {}
    rest = []
    for line in comment.splitlines():
        if line.startswith(META_PREFIX):
            for tok in line[len(META_PREFIX):].split():
                k, sep, v = tok.partition("=")
                if sep:
                    meta[k] = v
        else:
            rest.append(line)
    for k in _INT_KEYS:
        if k in meta:
            try:
                meta[k] = int(meta[k], 0)
            except ValueError:
                del meta[k]
    return meta, "\n".join(rest) or None


def format_meta(**fields) -> str:
    """The comment line :func:`parse_meta` reads back (None values left out)."""
    parts = []
    for k, v in fields.items():
        if v is None:
            continue
        if k in ("skb", "mark"):
            v = hex(v)
        elif k == "notes":
            v = quote(v, safe="")
        parts.append(f"{k}={v}")
    return META_PREFIX + " " + " ".join(parts)
