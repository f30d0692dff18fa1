"""flowviz.sources.ringbuf: the ring buffer read through its mappings, over a file laid out as the
kernel maps a ring buffer map (consumer page, producer page, the data twice)."""

from __future__ import annotations

import mmap
import struct

import pytest

from flowviz.sources.ringbuf import BUSY, DISCARD, MappedRing

PAGE = mmap.PAGESIZE
SIZE = 2 * PAGE   # data bytes


class _Layout:
    """The file behind a fake ring: records written at producer positions, the data mapped twice."""

    def __init__(self, path):
        self.f = open(path, "w+b")
        self.f.truncate(2 * PAGE + 2 * SIZE)
        self.data = bytearray(SIZE)
        self.prod = 0

    def record(self, payload: bytes, flags: int = 0, commit: bool = True) -> None:
        head = struct.pack("<II", len(payload) | flags | (0 if commit else BUSY), 0)
        rec = head + payload + b"\0" * (-len(payload) % 8)
        for i, byte in enumerate(rec):   # a record may wrap around the end
            self.data[(self.prod + i) % SIZE] = byte
        self.prod += len(rec)
        self.f.seek(PAGE)
        self.f.write(struct.pack("<Q", self.prod) + bytes(PAGE - 8) + self.data + self.data)   # the data twice
        self.f.flush()

    def consumer(self) -> int:
        self.f.seek(0)
        return struct.unpack("<Q", self.f.read(8))[0]


@pytest.fixture
def layout(tmp_path):
    lay = _Layout(tmp_path / "ring")
    yield lay
    lay.f.close()


def test_records_come_in_order_discarded_ones_skipped_and_the_consumer_moves_past_them(layout):
    ring = MappedRing(layout.f.fileno(), SIZE)
    try:
        layout.record(b"first")
        layout.record(b"gone", DISCARD)
        layout.record(b"x" * 24)
        got, used = ring.take(100)
        assert got == [b"first", b"x" * 24] and used == 16 + 16 + 32
        assert layout.consumer() == used
        assert ring.take(100) == ([], 0)   # nothing new
    finally:
        ring.close()


def test_a_take_stops_at_its_limit_and_at_a_record_still_being_written(layout):
    ring = MappedRing(layout.f.fileno(), SIZE)
    try:
        for i in range(3):
            layout.record(bytes([i]) * 8)
        assert ring.take(2) == ([b"\0" * 8, b"\1" * 8], 32)
        layout.record(b"busy", commit=False)
        assert ring.take(10) == ([b"\2" * 8], 16)   # the busy one waits
        assert layout.consumer() == 48
    finally:
        ring.close()


def test_a_record_that_wraps_around_the_end_reads_as_one_piece(layout):
    ring = MappedRing(layout.f.fileno(), SIZE)
    try:
        filler = b"f" * (SIZE - 8 - 16)   # its record leaves 16 bytes before the end
        layout.record(filler)
        assert ring.take(10) == ([filler], SIZE - 16)
        wrapped = bytes(range(40))
        layout.record(wrapped)   # header and 8 bytes before the end, the rest from the start
        assert ring.take(10) == ([wrapped], 48)
        assert layout.consumer() == SIZE - 16 + 48
    finally:
        ring.close()
