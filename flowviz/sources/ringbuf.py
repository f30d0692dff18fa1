"""The BPF ring buffer read through its own mappings: no libbpf callback per record.

The layout (kernel/bpf/ringbuf.c): the map's fd maps, at page 0, the consumer position (which the
reader writes); at page 1 the producer position; from page 2 the data, mapped twice in a row so
that a record that wraps around reads as one piece. A record is an 8-byte header (its length, with
the BUSY and DISCARD bits, and a page offset) and its bytes, padded to 8 bytes.

A reader must see a record's bytes only after its header says it is committed: the kernel writes
them, then the header with a store-release. x86-64 keeps loads in program order, so plain reads
in that order see them (:data:`MAPPED_OK`); on other machines flowviz takes records through libbpf,
which reads the header with a load-acquire.
"""

from __future__ import annotations

import mmap
import platform

BUSY = 1 << 31       #: the record is reserved and not yet committed
DISCARD = 1 << 30    #: the program gave the record up: skip it
LENGTH = DISCARD - 1  #: the header's length bits
HEADER = 8
MAPPED_OK = platform.machine() in ("x86_64", "AMD64")


class MappedRing:
    """Records from one ring buffer map of ``size`` data bytes (a power of two, whole pages)."""

    def __init__(self, fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._data = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons.close()
            raise
        # Positions and headers are read and written as whole words, through memoryviews: each item is
        # one load or store. Not with struct: pack_into zeroes its bytes before it writes them, and the
        # kernel, reading a consumer position of 0 meanwhile, found the ring full (sightings were lost);
        # its standard formats ("<Q") also go byte by byte, so a word could be read half old, half new.
        self._cons_q = memoryview(self._cons).cast("Q")
        self._prod_q = memoryview(self._data)[:8].cast("Q")
        self._words = memoryview(self._data).cast("I")

    def take(self, limit: int) -> tuple[list[bytes], int]:
        """Up to ``limit`` committed records, oldest first (discarded ones skipped), and the ring bytes
        they and the skipped ones took; the consumer position moves past them. Stops at a record
        still being written."""
        data, words = self._data, self._words
        start: int = self._cons_q[0]
        prod: int = self._prod_q[0]
        pos = start
        page, mask = self._page, self._mask
        out: list[bytes] = []
        while pos < prod and len(out) < limit:
            at = page + (pos & mask)
            head: int = words[at >> 2]
            if head & BUSY:
                break
            n = head & LENGTH
            if not head & DISCARD:
                out.append(data[at + HEADER:at + HEADER + n])
            pos += (n + HEADER + 7) & ~7
        if pos != start:
            self._cons_q[0] = pos
        return out, pos - start

    def close(self) -> None:
        for view in (self._cons_q, self._prod_q, self._words):
            view.release()
        self._data.close()
        self._cons.close()
