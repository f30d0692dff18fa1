"""`flowviz topo` against the lab: every namespace, link, peer and tunnel as iproute2 reports them,
and `topo --path` equal to what a live follow sees."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from livetools import following
from support import flowviz
from flowviz.lab.scenarios import TARGETS
from flowviz.lab.state import LabState
from flowviz.lab.traffic import one_request

pytestmark = pytest.mark.privileged


def ip_json(ns: str, *args: str):
    out = subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


@pytest.fixture(scope="module")
def all_lab():
    flowviz("lab", "down")
    try:
        flowviz("lab", "up", "--scenario", "all", check=True)
        yield LabState.load()
    finally:
        flowviz("lab", "down")


@pytest.fixture(scope="module")
def topo(all_lab):
    return json.loads(flowviz("topo", "--json", check=True).stdout)


def by_label(topo) -> dict:
    return {n["netns"]: n for n in topo["namespaces"]}


def test_every_lab_namespace_is_named_as_its_role(all_lab, topo):
    names = by_label(topo)
    for nsname, role in all_lab.namespaces.items():
        assert role.label in names, role.label
        n = names[role.label]
        assert n["path"] == f"/run/netns/{nsname}" and n["role"] == role.role
    assert names["node1:ingress_sbox"]["role"] == "ingress_sbox"
    assert names["node1:1-mp3mrjuxu0"]["network"] == "ingress"
    assert any(c["mode"] == "container:app" for c in names["node1:app"]["containers"])
    assert any(c["mode"] == "host" and c["name"] == "hostweb" for c in names["node1"]["containers"])


def test_links_peers_and_tunnels_match_iproute2(all_lab, topo):
    names = by_label(topo)
    label_of = {ns: r.label for ns, r in all_lab.namespaces.items()}
    checked = 0
    for nsname, role in all_lab.namespaces.items():
        ours = {l["ifname"]: l for l in names[role.label]["links"]}
        nsids = {e["nsid"]: e.get("name") for e in ip_json(nsname, "netns", "list-id")}
        for l in ip_json(nsname, "-d", "link", "show"):
            mine = ours[l["ifname"]]
            assert mine["ifindex"] == l["ifindex"] and mine["mtu"] == l["mtu"]
            kind = (l.get("linkinfo") or {}).get("info_kind")
            if kind:
                assert mine["kind"] == kind
            if l.get("master"):
                assert mine["master"] == l["master"]
            if kind == "veth":
                peer_ns = nsids.get(l["link_netnsid"]) if "link_netnsid" in l else nsname
                assert mine["peer"] == {"netns": label_of[peer_ns], "ifindex": l["link_index"],
                                        "ifname": mine["peer"]["ifname"]}, (nsname, l["ifname"])
                checked += 1
            if kind == "vxlan":
                data = l["linkinfo"]["info_data"]
                assert mine["vxlan"]["vni"] == data["id"] and mine["vxlan"]["port"] == data["port"]
                assert mine["vxlan"]["local"] == data["local"]
                assert mine["vxlan"]["underlay"] == label_of[nsids[l["link_netnsid"]]]
            if kind == "macvlan":
                assert mine["macvlan_mode"] == l["linkinfo"]["info_data"]["mode"]
                assert mine["parent"]["netns"] == label_of[nsids[l["link_netnsid"]]]
                assert mine["parent"]["ifindex"] == l["link_index"]
            addrs = sorted(f"{a['local']}/{a['prefixlen']}" for a in l.get("addr_info", []))
            if addrs:
                assert sorted(mine["addresses"]) == addrs
    assert checked > 20


def test_the_notes_walk_by_hand_is_automated(topo):
    """eth2 of the task sits on node2's docker_gwbridge through the host veth vethc0a30fb (@if85 ↔ @if84)."""
    names = by_label(topo)
    task = {l["ifname"]: l for l in names["node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b"]["links"]}
    assert task["eth2"]["peer"]["netns"] == "node2" and task["eth2"]["peer"]["ifname"] == "vethc0a30fb"
    node2 = {l["ifname"]: l for l in names["node2"]["links"]}
    assert node2["vethc0a30fb"]["master"] == "docker_gwbridge"
    assert node2["vethc0a30fb"]["peer"]["ifindex"] == task["eth2"]["ifindex"]
    sbox = names["node1:ingress_sbox"]
    assert any("--dport 20229" in r and "0x11e" in r for r in sbox["rules"]["mangle"])


def test_path_lists_the_hops_a_live_follow_sees(all_lab):
    path = json.loads(flowviz("topo", "--path", "--dport", "20229", "--json", check=True).stdout)
    assert path["from"] == "client" and path["to"] == "192.168.21.192"
    planned = [(h["place"], h["dir"]) for h in path["hops"]]
    with following("--dport", "20229", "--json") as f:
        assert one_request(TARGETS["swarm-ingress"], "tcp", timeout=3) is not None
        time.sleep(1.5)
    first = min((j for j in f.journeys() if j["reply_to"] is None), key=lambda j: j["start_ns"])
    seen = [(f"{h['netns']}/{h['ifname']}", h["dir"]) for h in f.hops(first["packet"])]
    assert seen == planned
    notes = " ".join(n for h in path["hops"] for n in h["notes"])
    for what in ("dnat 192.168.21.192:20229→172.18.0.2:20229", "mark 0x0→0x11e", "snat", "encap vni 4096",
                 "decap vni 4096", "deliver to 10.255.0.33:20229"):
        assert what in notes, what
    # the balancing step: an iptables DNAT where IPVS is emulated, the kernel's IPVS table where it is real
    assert "dnat 172.18.0.2:20229→10.255.0.33" in notes or "ipvs FWM 286: 172.18.0.2:20229→10.255.0.33" in notes


@pytest.mark.parametrize("scenario,to,port,last", [
    ("bridge", "192.168.21.192", 8080, "node1:web/eth0"),
    ("overlay", "10.0.4.19", 20229, "node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b/eth1"),
    ("macvlan", "192.168.21.50", 80, "node1:mv1/eth0"),
    ("host", "192.168.21.192", 8000, "node1/eth0")])
def test_path_in_the_other_scenarios(all_lab, scenario, to, port, last):
    src = TARGETS[scenario].netns
    label = all_lab.namespaces[src].label
    path = json.loads(flowviz("topo", "--path", "--dport", str(port), "--to", to, "--from", label, "--json",
                              check=True).stdout)
    assert path["hops"][-1]["place"] == last
    assert path["hops"][-1]["notes"][-1].startswith("deliver")


def test_topo_tree_and_errors(all_lab):
    r = flowviz("topo")
    assert r.returncode == 0 and "node1:ingress_sbox  [ingress_sbox]" in r.stdout
    assert "⇄ node1/veth8a3c2f1" in r.stdout
    r = flowviz("topo", "--path", "--dport", "20229", "--from", "nowhere")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nowhere" in r.stderr


HOSTILE_NS = "fvt-\x1b]0;owned\x07\x1b[2Jns"
HOSTILE_LINK = "e\x1b[2J\x07"   # the kernel takes any byte in a name but "/", ":" and white space
RAW_CONTROL = __import__("re").compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def hostile_netns():
    subprocess.run(["ip", "netns", "del", HOSTILE_NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", HOSTILE_NS], check=True)
    try:
        subprocess.run(["ip", "-n", HOSTILE_NS, "link", "add", HOSTILE_LINK, "type", "veth", "peer", "name", "p0"],
                       check=True)
        yield HOSTILE_NS
    finally:
        subprocess.run(["ip", "netns", "del", HOSTILE_NS], capture_output=True)


def test_hostile_namespace_and_link_names_reach_no_terminal_raw(hostile_netns):
    tree = flowviz("topo")
    assert tree.returncode == 0, tree.stderr
    assert "fvt-\\x1b]0;owned\\x07\\x1b[2Jns" in tree.stdout and "e\\x1b[2J\\x07" in tree.stdout
    assert not RAW_CONTROL.search(tree.stdout.replace("\n", "")), repr(RAW_CONTROL.search(tree.stdout))
    js = flowviz("topo", "--json")
    assert not RAW_CONTROL.search(js.stdout.replace("\n", ""))
    ns = next(n for n in json.loads(js.stdout)["namespaces"] if n["netns"] == HOSTILE_NS)   # JSON keeps the value
    assert any(l["ifname"] == HOSTILE_LINK for l in ns["links"])
    for args in (("follow", "--netns", "no\x1b[2Jsuch", "--text"), ("topo", "--path", "--dport", "80",
                                                                     "--from", "no\x1b[2Jsuch")):
        r = flowviz(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not RAW_CONTROL.search(r.stderr.strip()) and "\\x1b[2J" in r.stderr
