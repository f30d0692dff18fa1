"""``follow --write``: the followed hops as a pcapng that replay and tshark both read.

One interface per device, named ``netns/device`` with what is known about it
in the description; each packet carries its hop metadata in a comment
(``flowviz: dir=tx hook=... skb=0x... mark=0x11e ...``) and its direction in
epb_flags. The file is created with mode 0600 and never overwritten.
"""

from __future__ import annotations

import heapq
import os
from urllib.parse import quote

from ..annotations import notes_encode
from ..model import Journey
from ..pcapfile import PcapNgWriter, format_meta
from . import new_file


#: a journey is written once it finishes, up to the live window after its last sighting: its hops
#: wait this long (stream time) so that the file is in time order, as tshark expects of a capture
ORDER_LAG_NS = 2_000_000_000


class PcapngRecorder:
    def __init__(self, path: str, *, describe=None):
        self.path = path
        self.f = new_file(path, "--write", "recordings")   # private, whatever the umask says
        self.w = PcapNgWriter(self.f, app="flowviz follow")
        self.describe = describe   # (HopEvent) → extra "key=value ..." text from topology, or None
        self.hops = 0
        self._waiting: list = []   # (ts, n, interface, event, comment): a heap, oldest first
        self._latest = 0

    def journey(self, j: Journey) -> None:
        """Keep the journey's hops; write those older than ORDER_LAG_NS behind the newest in time
        order (journeys finish out of order: a dropped packet's at once, others a window later)."""
        last = len(j.hops) - 1
        for n, hop in enumerate(j.hops):
            ev = hop.event
            desc = [f"netns={quote(ev.netns)}" if ev.netns else "", f"netns_id={ev.netns_id}" if ev.netns_id else "",
                    f"ifindex={ev.ifindex}" if ev.ifindex else "", f"mode={quote(ev.mode)}" if ev.mode else ""]
            if self.describe is not None:
                desc.append(self.describe(ev) or "")
            idx = self.w.interface(ev.place, ev.linktype, " ".join(d for d in desc if d) or None)
            comment = format_meta(dir=ev.dir, hook=ev.hook, skb=ev.skb, mark=ev.mark, netns_id=ev.netns_id,
                                  ifindex=ev.ifindex, cpu=ev.cpu, reason=ev.drop_reason,
                                  notes=notes_encode(ev.notes),
                                  gap=1 if ev.gap or (j.incomplete and n == last) else None)   # replays incomplete
            heapq.heappush(self._waiting, (ev.ts_ns, self.hops, idx, ev, comment))
            self.hops += 1
            self._latest = max(self._latest, ev.ts_ns)
        self._write_until(self._latest - ORDER_LAG_NS)

    def _write_until(self, ts: int) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= ts:
            _, _, idx, ev, comment = heapq.heappop(waiting)
            self.w.packet(idx, ev.ts_ns, ev.data, max(ev.wire_len, len(ev.data)), direction=ev.dir, comment=comment)
        self.f.flush()

    def close(self) -> None:
        if not self.f.closed:
            self._write_until(1 << 63)
            self.f.close()

    def discard(self) -> None:
        """Remove the file this recorder created (only ever one it made itself: O_EXCL)."""
        self.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
