"""The correlator's parts, each on its own: identity, open journeys, connections, transitions."""

from __future__ import annotations

from flowviz.correlate.conns import Connections, request_of
from flowviz.correlate.identity import flow_tuple, identity, seen_before
from flowviz.correlate.journeys import OpenJourneys
from flowviz.correlate.transitions import crossing, mark, nat, tunnelling
from flowviz.decode import decode
from flowviz.model import ChangeKind as K, Endpoint, HopEvent
from flowviz.samples import rewrite, tcp_frame, vxlan_frame

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
SYN = tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=7, seq=100)
SYNACK = tcp_frame(B, A, "10.0.0.2", "10.0.0.1", 80, 40000, ip_id=9, flags="SA", seq=500, ack=101)


def ev(ts, place, d, data, **kw):
    ns, _, dev = place.rpartition("/")
    return HopEvent(ts_ns=ts, ifname=dev, dir=d, data=data, netns=ns or None, **kw)


# --- identity ---------------------------------------------------------------------------------

def test_identity_survives_nat_and_routing_but_not_another_packet():
    natted = rewrite(SYN, ip_dst="172.18.0.2", tcp_dport=8080, ip_src="10.255.0.3", ip_ttl=63)
    assert identity(decode(natted)) == identity(decode(SYN))
    assert identity(decode(rewrite(SYN, ip_id=8))) != identity(decode(SYN))
    wrapped = vxlan_frame(SYN, A, B, "192.168.21.192", "192.168.21.193", 4096)
    assert identity(decode(wrapped)) == identity(decode(SYN))   # the inner packet counts
    assert flow_tuple(decode(SYN)) == (6, "10.0.0.1", 40000, "10.0.0.2", 80)


def test_same_bytes_at_the_same_place_are_a_duplicate_or_a_new_packet():
    first = ev(0, "c1/eth0", "tx", SYN)
    seen = {("c1", "eth0", "tx"): first}
    spot = ("c1", "eth0", "tx")
    assert seen_before(seen, ev(500_000, "c1/eth0", "tx", SYN), spot) == "duplicate"
    assert seen_before(seen, ev(5_000_000, "c1/eth0", "tx", SYN), spot) == "new"   # a retransmission
    assert seen_before(seen, ev(5_000_000, "c1/eth0", "tx", rewrite(SYN, ip_ttl=63)), spot) is None


# --- open journeys ----------------------------------------------------------------------------

def test_a_sighting_finds_its_journey_by_skb_then_by_identity_and_idle_ones_leave():
    oj = OpenJourneys(window_ns=1000)
    f = decode(SYN)
    j = oj.start(oj.next_id(), conn=Connections().join(1, f, flow_tuple(f), 0)[0], direction="orig", ts=0)
    oj.add(j, ev(0, "c1/eth0", "tx", SYN, skb=0xA), f, identity(f))
    e2 = ev(10, "host/veth1", "rx", SYN, skb=0xA)
    e2, owner = oj.owner(e2)
    assert owner is j and oj.match(e2, identity(f), owner) == (j, False)
    e3 = ev(20, "host/veth2", "tx", SYN)   # no skb: joins by identity
    assert oj.match(e3, identity(f), None) == (j, False)
    # the skb address now carries another packet: not this journey
    other = decode(SYNACK)
    assert oj.match(ev(30, "c2/eth0", "tx", SYNACK, skb=0xA), identity(other), j) == (None, False)
    assert oj.idle(limit=0) == [] and len(oj) == 1
    assert oj.idle(limit=11) == [j] and len(oj) == 0
    assert oj.owner(ev(40, "x/y", "rx", SYN, skb=0xA))[1] is None   # out of the indexes too


# --- connections ------------------------------------------------------------------------------

def test_a_reply_joins_the_connection_through_the_nat_it_saw_and_names_its_request():
    conns = Connections()
    syn, synack = decode(SYN), decode(SYNACK)
    conn, direction = conns.join(1, syn, flow_tuple(syn), 0)
    assert direction == "orig"
    conns.note(conn, direction, flow_tuple(syn), 0)
    natted = decode(rewrite(SYN, ip_dst="172.18.0.9", tcp_dport=8080))
    conns.note(conn, direction, flow_tuple(natted), 5)   # the same packet after DNAT
    answer = decode(tcp_frame(B, A, "172.18.0.9", "10.0.0.1", 8080, 40000, flags="SA", seq=1, ack=101))
    c2, d2 = conns.join(2, answer, flow_tuple(answer), 10)
    assert c2 is conn and d2 == "reply"
    assert request_of(conn, 2, 10, answer) == 1        # its ack answers the SYN
    conns.sweep(now=10 + 300_000_000_001)
    assert len(conns) == 0


# --- transitions ------------------------------------------------------------------------------

def test_each_transition_question_on_its_own():
    a, b = ev(0, "c1/eth0", "tx", SYN), ev(1, "host/vethA", "rx", SYN)
    assert [c.kind for c in crossing(a, b, None, routed=False)] == [K.VETH]
    assert crossing(a, a, None, routed=False) == []
    natted = decode(rewrite(SYN, ip_dst="172.18.0.2", tcp_dport=8080))
    assert [(c.kind, c.before, c.after) for c in nat(decode(SYN).innermost, natted.innermost)] == \
        [(K.DNAT, Endpoint("10.0.0.2", 80), Endpoint("172.18.0.2", 8080))]
    assert [(c.before, c.after) for c in mark(a._replace(mark=0), b._replace(netns="c1", mark=0x11E))] == [(0, 0x11E)]
    assert mark(a._replace(mark=0x11E), b._replace(mark=0)) == []   # back to 0 in another namespace: not news
    wrapped = decode(vxlan_frame(SYN, A, B, "192.168.21.192", "192.168.21.193", 4096))
    enc = tunnelling(decode(SYN), wrapped, revni=False)
    assert [(c.kind, c.vni, c.after.dport) for c in enc] == [(K.ENCAP, 4096, 4789)]


def test_open_journeys_are_bounded_when_time_stands_still():
    """Packets that all share one timestamp (or have none) cannot close by time: past max_open the
    least recently seen journey is finished early, marked, and nothing is lost."""
    from flowviz.correlate import Correlator
    frames = [tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=i, seq=i) for i in range(50)]
    c = Correlator(max_open=10)
    out = []
    for f in frames:
        out += c.feed(ev(5, "c1/eth0", "tx", f))
        assert len(c.journeys) <= 10
    out += c.flush()
    assert len(out) == 50 and sum(j.evicted for j in out) == 40
    assert [j.hops[0].frame.ip.id for j in out] == list(range(50))   # in order, none lost


def test_open_journeys_are_bounded_by_the_bytes_they_hold():
    """Big packets, or one packet sighted again and again, make few journeys large: past max_held
    bytes the least recently seen is finished early too, and the held count returns to zero."""
    from flowviz.correlate import Correlator
    from flowviz.correlate.journeys import HOP_COST
    frames = [tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=i, seq=i, payload=b"x" * 8000)
              for i in range(30)]
    budget = 10 * (len(frames[0]) + len(decode(frames[0]).payload) + HOP_COST)
    c = Correlator(max_held=budget)
    out = []
    for f in frames:
        out += c.feed(ev(5, "c1/eth0", "tx", f))
        assert c.journeys.held <= budget
    out += c.flush()
    assert len(out) == 30 and sum(j.evicted for j in out) == 20 and c.journeys.held == 0
    # one packet, sighted at ever more places within the same instant: its journey is cut, not grown
    c = Correlator(max_held=budget)
    out = []
    for i in range(25):
        out += c.feed(ev(5, f"n{i}/eth0", "tx", frames[0]))
        assert c.journeys.held <= budget
    out += c.flush()
    assert sum(len(j.hops) for j in out) == 25 and out[0].evicted and len(out[0].hops) <= 11


def test_the_same_bytes_are_worked_out_once():
    """Both ends of a veth pair see the same bytes: the frame, its identity and its tuple are shared."""
    from flowviz.correlate import Correlator
    import flowviz.correlate as C
    c = Correlator()
    first = c._recognize(SYN, 1)
    # the same objects again (compiled, the tuple holding them is made anew: its items are shared)
    assert all(a is b for a, b in zip(c._recognize(SYN, 1), first)) and first[0] == decode(SYN)
    assert first[1:] == (identity(first[0]), flow_tuple(first[0]))
    for i in range(C.SEEN_SIZE):   # past the size: forgotten, and worked out again alike
        c._recognize(rewrite(SYN, ip_id=10_000 + i), 1)
    again = c._recognize(SYN, 1)
    assert again[0] is not first[0] and again == first


def test_a_shared_frame_is_classified_as_equal_bytes_would_be():
    from flowviz.correlate.transitions import classify
    f = decode(SYN)
    for pe, ce in ((ev(0, "c1/eth0", "tx", SYN), ev(1, "host/veth1", "rx", SYN)),
                   (ev(0, "h/br0", "rx", SYN, mark=0), ev(1, "h/veth2", "tx", SYN, mark=0x11E))):
        assert classify(pe, f, ce, f) == classify(pe, f, ce, decode(SYN)) != []


def test_the_field_orders_transitions_build_in():
    """transitions.py builds Changes, Hops and Transitions through tuple.__new__, fields in order."""
    from flowviz.model import Change, Hop, Transition
    assert Change._fields == ("kind", "before", "after", "vni", "reason", "via", "note")
    assert Hop._fields == ("seq", "event", "frame", "transition", "dt_ns") and Transition._fields == ("changes",)
