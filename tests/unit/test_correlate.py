"""Correlation: one packet's sightings become one journey, every transition kind is named."""

from __future__ import annotations

from flowviz.correlate import Correlator
from flowviz.filter import FlowFilter
from flowviz.model import ChangeKind as K, Endpoint, HopEvent
from flowviz.render.changes import after_text, change_json, change_text
from flowviz.samples import MAC, rewrite, tcp_frame, udp_frame, vxlan_frame

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
T0 = 1_000_000_000_000


def ev(i, place, d, frame, **kw) -> HopEvent:
    ns, _, dev = place.rpartition("/")
    return HopEvent(ts_ns=T0 + int(i * 1000), ifname=dev, dir=d, data=frame, netns=ns or None, **kw)


def run(events, **kw):
    return list(Correlator(**kw).run(events))


def kinds(j):
    return [h.transition.kinds() for h in j.hops]


SYN = tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=11, seq=100)


def test_veth_then_bridge_then_deliver():
    js = run([ev(0, "c1/eth0", "tx", SYN), ev(1, "host/vethA", "rx", SYN), ev(2, "host/vethB", "tx", SYN),
              ev(3, "c2/eth0", "rx", SYN)])
    assert len(js) == 1
    assert kinds(js[0]) == [(), (K.VETH,), (K.BRIDGE,), (K.VETH, K.DELIVER)]
    assert js[0].path == ["c1/eth0", "host/vethA", "host/vethB", "c2/eth0"]
    assert js[0].hops[3].changes[-1].after == Endpoint("10.0.0.2", 80)


def test_route_dnat_snat_and_mark():
    routed = rewrite(SYN, ip_ttl=63, eth_src=B, eth_dst=A, ip_dst="172.18.0.2", ip_src="10.255.0.3",
                     tcp_dport=8080, tcp_sport=1111)
    js = run([ev(0, "sbox/eth1", "rx", SYN, mark=0), ev(1, "sbox/eth0", "tx", routed, mark=0x11E)])
    ch = {c.kind: c for c in js[0].hops[1].changes}
    assert list(ch) == [K.ROUTE, K.DNAT, K.SNAT, K.MARK]
    assert (ch[K.DNAT].before, ch[K.DNAT].after) == (Endpoint("10.0.0.2", 80), Endpoint("172.18.0.2", 8080))
    assert (ch[K.SNAT].before, ch[K.SNAT].after) == (Endpoint("10.0.0.1", 40000), Endpoint("10.255.0.3", 1111))
    assert (ch[K.MARK].before, ch[K.MARK].after) == (0, 0x11E)
    assert (ch[K.ROUTE].before, ch[K.ROUTE].after) == (64, 63)
    # and as people and JSON see them
    assert change_json(ch[K.MARK])["to"] == "0x11e" and change_text(ch[K.ROUTE]) == "route ttl 64→63"
    assert change_text(ch[K.DNAT]) == "dnat 10.0.0.2:80→172.18.0.2:8080"


def test_mark_scrubbed_by_a_namespace_crossing_is_not_a_change():
    js = run([ev(0, "sbox/eth0", "tx", SYN, mark=0x11E), ev(1, "ovl/veth0", "rx", SYN, mark=0)])
    assert kinds(js[0])[1] == (K.VETH, K.DELIVER)


def test_vxlan_encap_and_decap():
    outer = vxlan_frame(SYN, MAC["n1eth0"], MAC["n2eth0"], "192.168.21.192", "192.168.21.193", 4096)
    js = run([ev(0, "ovl/vxlan0", "tx", SYN), ev(1, "node1/eth0", "tx", outer),
              ev(2, "node2/eth0", "rx", outer), ev(3, "ovl2/vxlan0", "rx", SYN)])
    assert len(js) == 1
    h = js[0].hops
    assert h[1].changes[0].kind is K.ENCAP and h[1].changes[0].vni == 4096
    assert h[1].changes[0].after.dst == "192.168.21.193" and h[1].changes[0].after.dport == 4789
    assert "192.168.21.193:4789" in after_text(h[1].changes[0])
    assert h[2].transition.kinds() == (K.VETH,)
    assert h[3].changes[0].kind is K.DECAP and h[3].changes[0].vni == 4096


def test_drop_with_reason_ends_the_journey():
    js = run([ev(0, "c1/eth0", "tx", SYN), ev(1, "host/veth", "drop", SYN, drop_reason="NETFILTER_DROP")])
    last = js[0].hops[-1].changes[-1]
    assert last.kind is K.DROP and last.reason == "NETFILTER_DROP"


def test_reply_is_linked_through_the_nat_the_request_saw():
    natted = rewrite(SYN, ip_dst="172.17.0.2", tcp_dport=8080, ip_ttl=63)
    sa = tcp_frame(B, A, "172.17.0.2", "10.0.0.1", 8080, 40000, flags="SA", seq=900, ack=101, ip_id=0)
    sa_out = rewrite(sa, ip_src="10.0.0.2", tcp_sport=80, ip_ttl=63)
    js = run([ev(0, "host/eth0", "rx", SYN), ev(1, "host/docker0", "tx", natted),
              ev(10_000, "web/eth0", "tx", sa), ev(10_001, "host/eth0", "tx", sa_out)])
    req, rep = js
    assert req.reply_to is None and req.direction == "orig"
    assert rep.reply_to == req.id and rep.direction == "reply" and rep.conn == req.conn


def test_reply_picks_the_request_its_ack_answers():
    syn = SYN
    data = tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=12, flags="PA", seq=101, ack=901,
                     payload=b"GET /\r\n")
    sa = tcp_frame(B, A, "10.0.0.2", "10.0.0.1", 80, 40000, flags="SA", seq=900, ack=101, ip_id=0)
    resp = tcp_frame(B, A, "10.0.0.2", "10.0.0.1", 80, 40000, flags="A", seq=901, ack=108, ip_id=1)
    js = {j.id: j for j in run([ev(0, "c/eth0", "tx", syn), ev(10, "c/eth0", "tx", data),
                                ev(20, "c/eth0", "rx", sa), ev(30, "c/eth0", "rx", resp)])}
    by_first = {j.hops[0].frame.l4.seq: j for j in js.values()}
    assert by_first[900].reply_to == by_first[100].id
    assert by_first[901].reply_to == by_first[101].id


def test_duplicate_sightings_merge_and_retransmissions_do_not():
    js = run([ev(0, "c/eth0", "tx", SYN), ev(0.5, "c/eth0", "tx", SYN), ev(1, "h/veth", "rx", SYN)])
    assert len(js) == 1 and len(js[0].hops) == 2
    # the same bytes again at the same place 200 ms later: a retransmission, another packet
    js = run([ev(0, "c/eth0", "tx", SYN), ev(200_000, "c/eth0", "tx", SYN)])
    assert len(js) == 2


def test_same_content_after_the_window_is_another_packet():
    js = run([ev(0, "c/eth0", "tx", SYN), ev(5_000_000, "h/veth", "rx", SYN)], window_ns=1_000_000_000)
    assert len(js) == 2


def test_skb_identity_and_reuse_after_free():
    u1 = udp_frame(A, B, "10.0.0.1", "10.0.0.2", 1000, 53, b"one")
    u2 = udp_frame(A, B, "10.0.0.1", "10.0.0.2", 1000, 53, b"two")
    natted = rewrite(u1, ip_dst="10.9.9.9")
    events = [
        ev(0, "a/eth0", "tx", u1, skb=0xFFFF1, hook="net_dev_start_xmit"),
        ev(1, "b/eth0", "rx", natted, skb=0xFFFF1, hook="netif_rx"),
        ev(2, "b/eth0", "rx", natted, skb=0xFFFF1, hook="netif_receive_skb"),   # the same hop, twice
        HopEvent(T0 + 3000, "eth0", "free", b"", netns="b", skb=0xFFFF1),
        ev(4, "a/eth0", "tx", u2, skb=0xFFFF1),                               # address reused
    ]
    js = sorted(run(events), key=lambda j: j.id)
    assert [len(j.hops) for j in js] == [2, 1]
    assert js[0].hops[1].changes[0].kind is K.VETH


def test_filter_keeps_matching_flows_and_their_replies_only():
    other = tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40001, 443, ip_id=99, seq=5)
    natted = rewrite(SYN, ip_dst="172.17.0.2", tcp_dport=8080)   # dport changes on the way
    sa = tcp_frame(B, A, "172.17.0.2", "10.0.0.1", 8080, 40000, flags="SA", seq=900, ack=101)
    events = [ev(0, "h/eth0", "rx", SYN), ev(1, "h/docker0", "tx", natted), ev(2, "h/eth0", "rx", other),
              ev(10, "web/eth0", "tx", sa)]
    js = run(events, flt=FlowFilter(dport=8080))
    assert sorted(j.hops[0].frame.innermost.l4.seq for j in js) == [100, 900]
    assert run(events, flt=FlowFilter(dport=9)) == []
    assert len(run(events, flt=FlowFilter(host="172.17.0.2", proto="tcp"))) == 2


def test_filter_matches_vxlan_inner_headers():
    outer = vxlan_frame(SYN, A, B, "192.168.21.192", "192.168.21.193", 4096)
    assert len(run([ev(0, "n1/eth0", "tx", outer)], flt=FlowFilter(dport=80))) == 1
    assert len(run([ev(0, "n1/eth0", "tx", outer)], flt=FlowFilter(dport=4789))) == 1
    assert run([ev(0, "n1/eth0", "tx", outer)], flt=FlowFilter(dport=81)) == []


def test_hops_are_ordered_by_time_even_when_they_arrive_out_of_order():
    js = run([ev(1, "h/veth", "rx", SYN), ev(0, "c/eth0", "tx", SYN)])
    assert js[0].path == ["c/eth0", "h/veth"]


def test_idle_ticks_do_not_sweep_connections_each_time(monkeypatch):
    """The sweep of idle connections runs once per SWEEP_EVERY events; idle ticks (expire())
    between events used to sweep every time once the event count sat on a multiple."""
    import flowviz.correlate as corr
    monkeypatch.setattr(corr, "SWEEP_EVERY", 10)
    c = Correlator()
    for i in range(10):
        c.feed(ev(i, "c1/eth0", "tx", tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000 + i, 80, ip_id=i)))
    assert c._swept_at == 10   # the event count at the last sweep (compiled, methods cannot be patched)
    for t in range(50):
        c.expire(T0 + 10_000 + t * 1000)
        assert c._swept_at == 10


def test_a_packet_no_hop_could_make_match_is_never_kept():
    """--proto tcp: a UDP or ARP packet cannot become TCP on the way (VXLAN adds UDP, NAT keeps the
    protocol), so it is dropped at its first sighting instead of held until its journey ends; UDP
    and the other criteria are left to the end (a TCP packet wrapped in VXLAN is UDP outside)."""
    udp = udp_frame(A, B, "10.0.0.1", "10.0.0.2", 5000, 53, b"query", ip_id=4)
    c = Correlator(flt=FlowFilter(proto="tcp"))
    for i, data in enumerate((udp, udp, SYN)):
        c.feed(ev(i, f"n{i}/eth0", "tx", data))
    assert len(c.journeys) == 1   # the SYN's; the UDP packet was never opened
    assert [j.hops[0].frame.innermost.l4.seq for j in c.flush()] == [100]
    wrapped = vxlan_frame(SYN, A, B, "192.168.21.192", "192.168.21.193", 4096)
    c = Correlator(flt=FlowFilter(proto="udp", dport=4789))
    c.feed(ev(0, "c/eth0", "tx", SYN))          # plain TCP now, UDP once wrapped: kept
    c.feed(ev(1, "n1/eth0", "tx", wrapped))
    assert len(c.journeys) == 1 and [len(j.hops) for j in c.flush()] == [2]
