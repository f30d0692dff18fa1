"""Capture readers: the formats users really have, and every kind of bad file."""

from __future__ import annotations

import io
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from flowviz.errors import BadCapture
from flowviz.pcapfile import PcapNgWriter, _block, _opt, read_capture

PKT = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2))


def pcap(records, *, ns=False, endian="<", linktype=1, snaplen=65535) -> bytes:
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for sec, frac, data in records:
        out += struct.pack(endian + "IIII", sec, frac, len(data), len(data)) + data
    return out


def write(tmp_path, name, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_resolutions_and_byte_orders(tmp_path, ns, endian):
    path = write(tmp_path, "a.pcap", pcap([(10, 5, PKT), (11, 7, PKT)], ns=ns, endian=endian))
    recs = list(read_capture(path))
    unit = 1 if ns else 1000
    assert [r.ts_ns for r in recs] == [10 * 10**9 + 5 * unit, 11 * 10**9 + 7 * unit]
    assert recs[0].data == PKT and recs[0].iface.linktype == 1 and recs[0].iface.name is None


def test_pcapng_interfaces_comments_flags_and_resolutions(tmp_path):
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    a = w.interface("ingress_sbox/eth0", 1)
    b = w.interface("eth1", 1, "netns=node1")
    w.packet(a, 1_500_000_000_123_456_789, PKT, direction="tx", comment="hello")
    w.packet(b, 1_500_000_000_123_456_790, PKT, 1500, direction="rx")
    # a third interface in µs (the default if_tsresol) with an offset of 100 s
    idb = struct.pack("<HHI", 1, 0, 0) + _opt(2, b"eth9") + _opt(14, struct.pack("<q", 100)) + _opt(0, b"")
    buf.write(_block(1, idb))
    epb = struct.pack("<IIIII", 2, 0, 1_000_000, len(PKT), len(PKT)) + PKT + b"\0" * (-len(PKT) % 4)
    buf.write(_block(6, epb))
    # a fourth with 2^-10 s resolution
    idb = struct.pack("<HHI", 1, 0, 0) + _opt(2, b"eth8") + _opt(9, bytes([0x80 | 10])) + _opt(0, b"")
    buf.write(_block(1, idb))
    buf.write(_block(6, struct.pack("<IIIII", 3, 0, 1024, len(PKT), len(PKT)) + PKT + b"\0" * (-len(PKT) % 4)))
    recs = list(read_capture(write(tmp_path, "a.pcapng", buf.getvalue())))
    assert [r.iface.name for r in recs] == ["ingress_sbox/eth0", "eth1", "eth9", "eth8"]
    assert recs[0].ts_ns == 1_500_000_000_123_456_789 and recs[0].comment == "hello"
    assert recs[0].direction == "tx" and recs[1].direction == "rx" and recs[1].orig_len == 1500
    assert recs[1].iface.description == "netns=node1"
    assert recs[2].ts_ns == 101 * 10**9
    assert recs[3].ts_ns == 10**9


def test_pcapng_several_sections_and_simple_packets(tmp_path):
    one, two = io.BytesIO(), io.BytesIO()
    w1 = PcapNgWriter(one)
    w1.packet(w1.interface("a", 1), 5, PKT)
    w2 = PcapNgWriter(two)
    w2.interface("b", 1, snaplen=65535)
    two.write(_block(3, struct.pack("<I", len(PKT)) + PKT + b"\0" * (-len(PKT) % 4)))  # simple packet block
    recs = list(read_capture(write(tmp_path, "cat.pcapng", one.getvalue() + two.getvalue())))
    assert [r.iface.name for r in recs] == ["a", "b"]
    assert recs[1].data == PKT


def test_big_endian_pcapng(tmp_path):
    shb = struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = struct.pack(">II", 0x0A0D0D0A, 12 + len(shb)) + shb + struct.pack(">I", 12 + len(shb))

    def blk(t, body):
        return struct.pack(">II", t, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))
    name = b"eth0"
    out += blk(1, struct.pack(">HHI", 1, 0, 0) + struct.pack(">HH", 2, 4) + name + struct.pack(">HH", 0, 0))
    pad = b"\0" * (-len(PKT) % 4)
    out += blk(6, struct.pack(">IIIII", 0, 0, 7, len(PKT), len(PKT)) + PKT + pad)
    recs = list(read_capture(write(tmp_path, "be.pcapng", out)))
    assert recs[0].iface.name == "eth0" and recs[0].ts_ns == 7000 and recs[0].data == PKT


# --- bad input -------------------------------------------------------------------

def _problem(path) -> BadCapture:
    with pytest.raises(BadCapture) as ei:
        list(read_capture(path))
    assert path in str(ei.value)
    assert "\n" not in str(ei.value)
    return ei.value


def test_empty_file(tmp_path):
    assert "empty" in _problem(write(tmp_path, "e.pcap", b"")).problem


def test_wrong_magic_and_text_files(tmp_path):
    assert "not a pcap" in _problem(write(tmp_path, "t.txt", b"hello, I am text\n")).problem
    assert "not a pcap" in _problem(write(tmp_path, "z.bin", b"\x00" * 64)).problem


def test_missing_file(tmp_path):
    assert "No such file" in _problem(str(tmp_path / "nope.pcap")).problem


def test_truncated_pcap_keeps_what_came_before(tmp_path):
    data = pcap([(1, 0, PKT), (2, 0, PKT), (3, 0, PKT)])
    path = write(tmp_path, "cut.pcap", data[:-10])
    got = []
    with pytest.raises(BadCapture) as ei:
        for r in read_capture(path):
            got.append(r)
    assert len(got) == 2 and ei.value.partial and "truncated" in ei.value.problem


def test_truncated_pcapng(tmp_path):
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    i = w.interface("eth0", 1)
    for t in range(3):
        w.packet(i, t, PKT)
    path = write(tmp_path, "cut.pcapng", buf.getvalue()[:-7])
    got = []
    with pytest.raises(BadCapture) as ei:
        for r in read_capture(path):
            got.append(r)
    assert len(got) == 2 and ei.value.partial and "truncated" in ei.value.problem


def test_absurd_record_length(tmp_path):
    bad = bytearray(pcap([(1, 0, PKT)]))
    struct.pack_into("<I", bad, 24 + 8, 0x7FFFFFF0)
    assert "claims" in _problem(write(tmp_path, "big.pcap", bytes(bad))).problem
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    w.packet(w.interface("eth0", 1), 1, PKT)
    raw = bytearray(buf.getvalue())
    epb_at = raw.rfind(struct.pack("<I", 6))
    struct.pack_into("<I", raw, epb_at + 4, 0x7FFFFFF0)
    assert "claims" in _problem(write(tmp_path, "big.pcapng", bytes(raw))).problem


def test_unknown_link_type(tmp_path):
    assert "link type 147" in _problem(write(tmp_path, "u.pcap", pcap([(1, 0, PKT)], linktype=147))).problem
    buf = io.BytesIO()
    PcapNgWriter(buf).interface("usb0", 220)
    p = _problem(write(tmp_path, "u.pcapng", buf.getvalue()))
    assert "usb0" in p.problem and "220" in p.problem


def test_pcapng_packet_on_undescribed_interface(tmp_path):
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    w.packet(3, 1, PKT)
    assert "never described" in _problem(write(tmp_path, "x.pcapng", buf.getvalue())).problem


class _Trickle(io.RawIOBase):
    """A pipe's way of handing bytes over: a few at a time, whatever was asked for."""

    def __init__(self, data: bytes, piece: int):
        self.data, self.at, self.piece = data, 0, piece

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.piece, len(self.data) - self.at)
        b[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def test_blocks_that_come_in_pieces_and_blocks_larger_than_a_read_are_read_whole(tmp_path):
    """The reader parses blocks where they lie in what it read ahead; a block may arrive in many
    pieces (a pipe: 64 KiB a read, here odd sizes) and be larger than what it reads at a time."""
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    i = w.interface("eth0", 1)
    big = PKT + bytes(range(256)) * 4096   # 1 MiB and more: four times what the reader asks for at once
    sizes = [PKT, big, PKT[:20], big[:300_001], PKT]
    for t, data in enumerate(sizes):
        w.packet(i, t, data, comment=f"packet {t}")
    whole = [(r.ts_ns, r.data, r.comment) for r in read_capture(write(tmp_path, "big.pcapng", buf.getvalue()))]
    assert [d for _, d, _ in whole] == sizes and [c for _, _, c in whole] == [f"packet {t}" for t in range(5)]
    for piece in (1, 7, 4096, 65536):
        stream = io.BufferedReader(_Trickle(buf.getvalue(), piece))
        assert [(r.ts_ns, r.data, r.comment) for r in read_capture("-", stream)] == whole, piece
    cut = io.BufferedReader(_Trickle(buf.getvalue()[:-100_000], 65536))   # ends inside the last big block
    got = []
    with pytest.raises(BadCapture, match=r"truncated block at byte \d+ \(\d+ bytes announced, \d+ left\)"):
        for r in read_capture("-", cut):
            got.append(r.data)
    assert got == sizes[:3]


def test_a_simple_packet_block_without_room_for_its_length_is_an_error(tmp_path):
    """It was read as a packet whose length was the block's own trailing length field."""
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    w.interface("eth0", 1)
    path = write(tmp_path, "short-spb.pcapng", buf.getvalue() + _block(3, b""))
    with pytest.raises(BadCapture, match="short simple packet block at byte"):
        list(read_capture(path))
