"""`flowviz lab break WHAT` / `lab fix WHAT` on the swarm ingress path: each fault changes the followed
journey the way the notes say it must, with the kernel's drop reason, and `fix` gives back exactly the
journey of before."""

from __future__ import annotations

import time

import pytest

from livetools import fv_programs, following
from support import flowviz
from flowviz.lab.scenarios import TARGETS
from flowviz.lab.state import LabState

pytestmark = pytest.mark.privileged
SWARM = TARGETS["swarm-ingress"]
CLIENT = "192.168.21.11"


@pytest.fixture(autouse=True)
def fixed_afterwards(swarm_lab):
    assert fv_programs() == []
    yield
    flowviz("lab", "fix", "all")
    assert LabState.load().faults == {}
    assert fv_programs() == [], "a tracer stayed loaded"


def follow_one(proto: str = "tcp", size=None) -> list[dict]:
    """The journeys of one request (and what it caused), to or from the client, as JSON objects with
    their hops."""
    from flowviz.lab.traffic import one_request
    with following("--host", CLIENT, "--json") as f:
        one_request(SWARM, proto, timeout=3.0, size=size)
        time.sleep(1.0)   # past the correlation window
    assert f.returncode == 0, f.stderr
    js = f.journeys()
    for j in js:
        j["hop_objects"] = f.hops(j["packet"])
    return sorted(js, key=lambda j: j["start_ns"])


def shape(j: dict) -> list[tuple]:
    """A journey as places and what changed there; ports the client chose left out."""
    out = []
    for h in j["hop_objects"]:
        kinds = tuple(sorted(c["kind"] for c in h["changes"]))
        out.append((h["netns"], h["ifname"], h["dir"], kinds, h["src"], h["dst"], h.get("drop_reason")))
    return out


def first_request(js):
    return next(j for j in js if j["reply_to"] is None and j["hop_objects"][0]["netns"] == "client")


def exchange(js) -> list:
    """The shapes of the client's first request and of what answered it."""
    req = first_request(js)
    return [shape(req)] + [shape(j) for j in js if j["reply_to"] == req["packet"]][:1]


def end(j) -> tuple:
    last = j["hop_objects"][-1]
    return last["netns"], last["ifname"], last["dir"]


def drop_reason(j):
    last = j["hop_objects"][-1]
    return next((c.get("reason") for c in last["changes"] if c["kind"] == "drop"), None)


def broken_and_fixed(what: str, proto: str = "tcp", size=None):
    before = follow_one(proto, size)
    flowviz("lab", "break", what, check=True)
    assert what in LabState.load().faults
    try:
        broken = follow_one(proto, size)
    finally:
        flowviz("lab", "fix", what, check=True)
    after = follow_one(proto, size)
    assert LabState.load().faults == {}
    # fixed: the very journey of before, request and reply
    assert exchange(after) == exchange(before)
    return before, broken


def test_the_mark_rule_removed_ipvs_never_sees_the_packet():
    before, broken = broken_and_fixed("mark")
    assert any(c["kind"] == "mark" for h in first_request(before)["hop_objects"] for c in h["changes"])
    j = first_request(broken)
    assert end(j) == ("node1:ingress_sbox", "eth1", "drop")
    assert drop_reason(j) == "NO_SOCKET"   # delivered to ingress_sbox itself, where nothing listens
    assert not any(c["kind"] in ("mark", "ipvs", "snat") for h in j["hop_objects"] for c in h["changes"])


def test_the_snat_rule_removed_the_reply_goes_astray():
    before, broken = broken_and_fixed("snat")
    j = first_request(broken)
    assert end(j)[0].startswith("node2:my_kafka1") and j["hop_objects"][-1]["src"] == CLIENT
    reply = next(r for r in broken if r["reply_to"] == j["packet"])
    path = [(h["netns"], h["ifname"]) for h in reply["hop_objects"]]
    assert path[0][1] == "eth2"                           # out of the task's docker_gwbridge leg
    assert not any("ingress_sbox" in ns for ns, _ in path)    # not back the way it came
    assert end(reply) == ("client", "eth0", "drop") and drop_reason(reply) == "NO_SOCKET"
    assert reply["hop_objects"][-1]["src"] == "10.255.0.33"  # an address the client never asked
    good = next(r for r in before if r["reply_to"] == first_request(before)["packet"])
    assert any("ingress_sbox" in h["netns"] for h in good["hop_objects"])


def test_forward_policy_drop_stops_the_packet_on_node1():
    _, broken = broken_and_fixed("forward")
    j = first_request(broken)
    assert end(j) == ("node1", "eth0", "drop") and drop_reason(j) == "NETFILTER_DROP"


def test_a_missing_fdb_entry_drops_at_vxlan0():
    _, broken = broken_and_fixed("fdb")
    j = first_request(broken)
    assert end(j) == ("node1:1-mp3mrjuxu0", "vxlan0", "drop")
    # 6.18 names it; older kernels free it without a reason
    assert drop_reason(j) in ("NO_TX_TARGET", "VXLAN_NO_REMOTE", "NOT_SPECIFIED")


def test_overlay_mtu_1500_lets_a_full_packet_on_until_vxlan_turns_it_back():
    before, broken = broken_and_fixed("mtu", "udp", 1472)
    # as Docker sets it (1450), ingress_sbox refuses the 1500-byte packet at once
    j = first_request(before)
    assert end(j) == ("node1:ingress_sbox", "eth1", "drop") and drop_reason(j) == "PKT_TOO_BIG"
    # at 1500 it gets into the overlay, and only vxlan0 finds that 1500 + 50 does not fit the wire
    j = first_request(broken)
    assert end(j) == ("node1:1-mp3mrjuxu0", "vxlan0", "tx")
    assert j["hop_objects"][-1]["len"] == 1514
    icmp = [k for k in broken if k["hop_objects"][0]["proto"] == "icmp"]
    assert icmp, "vxlan0 sent no ICMP back"
    assert icmp[0]["hop_objects"][0]["ifname"] == "vxlan0" and end(icmp[0])[0] == "client"


def test_break_and_fix_are_refused_cleanly_when_they_cannot_run(tmp_path):
    r = flowviz("lab", "break", "nonsense")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = flowviz("lab", "fix", "mark")
    assert r.returncode == 0 and "not broken" in r.stdout
    flowviz("lab", "break", "mark", check=True)
    r = flowviz("lab", "break", "mark")   # twice: still one fault, fixed once
    assert r.returncode == 0 and "already broken" in r.stdout
