"""On a stock distribution kernel (kprobes, IPVS, module BTF): the lab's real IPVS, and the
optional hooks' annotations on the lab's swarm ingress path.

Skipped here with a reason when this kernel lacks them; scripts/vmtest runs them on Debian's
stock kernel, where a skip is a failure.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from livetools import fv_programs, following
from support import flowviz, needs_stock_kernel
from flowviz.lab.scenarios import TARGETS
from flowviz.lab.traffic import one_request

pytestmark = [pytest.mark.privileged, needs_stock_kernel]
SWARM = TARGETS["swarm-ingress"]
SBOX, OVERLAY1, OVERLAY2 = "node1:ingress_sbox", "node1:1-mp3mrjuxu0", "node2:1-mp3mrjuxu0"


def test_doctor_reports_every_hook_ready():
    r = flowviz("doctor")
    assert r.returncode == 0, r.stdout
    for group in ("ipvs", "vxlan", "bridge", "nat"):
        line = next(l for l in r.stdout.splitlines() if f"optional hook: {group}" in l)
        assert line.startswith("ok "), line
        assert "kprobes on" in line
    compiled = next(l for l in r.stdout.splitlines() if "tracer compiles and loads" in l)
    assert "with the ipvs, vxlan, bridge, nat hooks" in compiled


def test_lab_uses_kernel_ipvs_and_down_removes_it():
    flowviz("lab", "down")
    try:
        flowviz("lab", "up", "--scenario", "swarm-ingress", check=True)
        st = json.loads(flowviz("lab", "status", "--json", check=True).stdout)
        assert st["ipvs"].startswith("kernel IPVS")
        text = flowviz("lab", "status", check=True).stdout
        assert "kernel IPVS" in text
        from flowviz.lab.net import run_in
        table = run_in("fvlab-n1-sbox", "cat", "/proc/net/ip_vs").stdout
        # FWM 0x11e (286), round robin, to 10.255.0.33 (0AFF0021) by masquerade
        assert re.search(r"FWM\s+0000011E rr", table) and re.search(r"->\s+0AFF0021:0000\s+Masq", table), table
        assert one_request(SWARM, "tcp", timeout=5) is not None
    finally:
        flowviz("lab", "down", check=True)
    assert not [n for n in os.listdir("/run/netns") if n.startswith("fvlab-")]
    with open("/proc/net/ip_vs") as f:   # the root namespace never had a service of ours
        assert "FWM" not in f.read()


@pytest.fixture(scope="module")
def annotated(swarm_lab):
    with following("--dport", "20229", "--json") as f:
        assert one_request(SWARM, "tcp", timeout=5) is not None
        time.sleep(1.5)
    assert f.returncode == 0, f.stderr
    assert fv_programs() == [], "a hook stayed loaded"
    return f


def _first_request(f):
    reqs = [j for j in f.journeys() if j["reply_to"] is None and any(SBOX in p for p in j["path"])]
    return min(reqs, key=lambda j: j["start_ns"])


def _hop(hops, netns, ifname, direction):
    return next(h for h in hops if (h["netns"], h["ifname"], h["dir"]) == (netns, ifname, direction))


def test_startup_notice_lists_the_attached_hooks(annotated):
    assert "optional hooks attached: ipvs, vxlan, bridge, nat" in annotated.stderr


def test_ipvs_hop_names_the_real_server(annotated):
    syn = _first_request(annotated)
    eth0 = _hop(annotated.hops(syn["packet"]), SBOX, "eth0", "tx")
    ipvs = [c for c in eth0["changes"] if c["kind"] == "ipvs"]
    assert len(ipvs) == 1 and not [c for c in eth0["changes"] if c["kind"] == "dnat"]
    note = ipvs[0]["note"]
    assert (note["real"], note["real_port"], note["fwmark"], note["scheduler"]) == ("10.255.0.33", 20229, 286, "rr")
    assert note["new"] is True and note["reply"] is False
    assert (ipvs[0]["from"], ipvs[0]["to"]) == ("172.18.0.2:20229", "10.255.0.33:20229")
    # the notes' SNAT, by iptables at postrouting, with the conntrack tuples
    snat = next(c for c in eth0["changes"] if c["kind"] == "snat")
    assert snat["note"]["hook"] == "postrouting" and snat["note"]["manip"] == "snat"
    assert snat["note"]["reply"]["dst"] == "10.255.0.3"
    assert {"mark", "route"} <= {c["kind"] for c in eth0["changes"]}


def test_a_later_packet_reuses_the_ipvs_connection(annotated):
    syn = _first_request(annotated)
    later = [j for j in annotated.journeys() if j["reply_to"] is None and j["conn"] == syn["conn"]
             and j["packet"] != syn["packet"] and any(SBOX in p for p in j["path"])]
    assert later
    eth0 = _hop(annotated.hops(later[0]["packet"]), SBOX, "eth0", "tx")
    note = next(c for c in eth0["changes"] if c["kind"] == "ipvs")["note"]
    assert note["new"] is False and note["real"] == "10.255.0.33"


def test_vxlan_and_bridge_annotations(annotated):
    syn = _first_request(annotated)
    hops = annotated.hops(syn["packet"])
    underlay = _hop(hops, "node1", "eth0", "tx")
    encap = next(c for c in underlay["changes"] if c["kind"] == "encap")
    assert encap["note"]["dir"] == "tx" and encap["note"]["vni"] == 4096
    assert encap["note"]["remote"] == "192.168.21.193" and encap["note"]["port"] == 4789
    assert encap["note"]["fdb_mac"] == "02:42:0a:ff:00:21"   # the task's eth0
    decap_hop = _hop(hops, OVERLAY2, "vxlan0", "rx")
    decap = next(c for c in decap_hop["changes"] if c["kind"] == "decap")
    assert decap["note"]["dir"] == "rx" and decap["note"]["vni"] == 4096 and decap["note"]["port"] == 4789
    assert decap["note"]["remote"] == "192.168.21.192"
    veth1 = _hop(hops, OVERLAY2, "veth1", "tx")
    bridge = next(c for c in veth1["changes"] if c["kind"] == "bridge")
    assert bridge["note"] == {"bridge": "br0", "port": "veth1", "flood": False, "kind": "bridge"}


def test_the_reply_comes_back_through_ipvs(annotated):
    syn = _first_request(annotated)
    reply = next(j for j in annotated.journeys() if j["reply_to"] == syn["packet"])
    assert reply["path"][-1] == "client/eth0"
    hops = annotated.hops(reply["packet"])
    eth1 = _hop(hops, SBOX, "eth1", "tx")
    ipvs = next(c for c in eth1["changes"] if c["kind"] == "ipvs")
    assert ipvs["note"]["reply"] is True and ipvs["note"]["real"] == "10.255.0.33"
    assert ipvs["from"].startswith("10.255.0.33") and ipvs["to"] == "172.18.0.2:20229"


def test_text_output_shows_the_kernel_notes(swarm_lab):
    with following("--dport", "20229", "--text", "--count", "1") as f:
        assert one_request(SWARM, "tcp", timeout=5) is not None
        time.sleep(1.5)
    assert "↳ kernel: ipvs FWM 286 rr → real server 10.255.0.33:20229 (new connection, scheduled)" in f.stdout
    assert "ipvs FWM 286 172.18.0.2:20229→10.255.0.33:20229" in f.stdout


def test_topo_path_reads_the_real_ipvs_table(swarm_lab):
    r = flowviz("topo", "--path", "--dport", "20229", "--json", check=True)
    hops = json.loads(r.stdout)["hops"]
    notes = " ".join(n for h in hops for n in h.get("notes", []))
    assert "ipvs FWM 286" in notes and "10.255.0.33" in notes
    places = [(h["netns"], h["ifname"]) for h in hops]
    assert (SBOX, "eth0") in places and ("node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b", "eth0") in places
