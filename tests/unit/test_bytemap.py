"""The byte diagram: offsets and lengths from the packet's own bytes, and the VXLAN arithmetic."""

from __future__ import annotations

from flowviz.correlate import Correlator
from flowviz.model import ChangeKind
from flowviz.pipeline import collect
from flowviz.render.bytemap import diagram, segments
from flowviz.sources.replay import ReplaySource
from support import sample


def swarm_request():
    src = ReplaySource([sample("swarm-ingress.pcapng")])
    return collect(src, Correlator(topology=src.topology))[0]


def at(j, kind):
    return next(i for i, h in enumerate(j.hops) if any(c.kind is kind for c in h.changes))


def test_encap_hop_is_drawn_header_by_header_at_its_offsets():
    j = swarm_request()
    h = j.hops[at(j, ChangeKind.ENCAP)]
    segs = segments(h.frame, h.event.data, h.event.wire_len)
    assert [(s.offset, s.size, s.name) for s in segs] == [
        (0, 14, "outer Ethernet"), (14, 20, "outer IPv4"), (34, 8, "outer UDP"), (42, 8, "VXLAN"),
        (50, 14, "inner Ethernet"), (64, 20, "inner IPv4"), (84, 32, "inner TCP")]   # TCP with options: 32


def test_the_vxlan_arithmetic_comes_from_this_packets_lengths():
    j = swarm_request()
    text = "\n".join(diagram(j, at(j, ChangeKind.ENCAP)))
    assert "116 bytes on the wire − 66 bytes of inner frame = 50 bytes (14 + 20 + 8 + 8)" in text
    assert "1500 − 50 = 1450" in text
    assert "VNI 4096 = 0x001000 = 0000 0000 0001 0000 0000 0000" in text
    assert "08 | 00 00 00 | 00 10 00 | 00" in text           # the header's own bytes
    assert "source port 51234 is a hash of the inner packet's flow" in text
    assert "VXLAN adds 50 bytes" in text


def test_a_decap_hop_draws_the_frame_it_unwrapped():
    j = swarm_request()
    i = at(j, ChangeKind.DECAP)
    lines = diagram(j, i)
    assert lines[0].startswith(f"hop {j.hops[i].seq}  node2:1-mp3mrjuxu0/vxlan0 unwrapped the frame that hop "
                               f"{j.hops[i - 1].seq} saw at node2/eth0")
    assert any("VXLAN" in line and "VNI 4096" in line for line in lines)


def test_every_bar_fits_its_width_and_plain_hops_draw_too():
    j = swarm_request()
    for i in range(len(j.hops)):
        for width in (40, 60, 96):
            lines = diagram(j, i, width)
            assert all(len(line) <= width for line in lines[1:4] if line.startswith(("|", "└", "0")))
    assert "|Eth" in diagram(j, 0)[2] and "TCP" in diagram(j, 0)[2]
