"""`flowviz replay`: the contract of its outputs and of its errors."""

from __future__ import annotations

import json

import pytest

from support import flowviz, sample

HOP_FIELDS = {"type", "packet", "seq", "ts_ns", "netns", "ifname", "dir", "proto", "src", "dst", "sport",
              "dport", "mark", "vni", "inner", "changes"}
JOURNEY_FIELDS = {"type", "packet", "hops", "path", "changes", "reply_to"}


def objects(stdout: str):
    return [json.loads(line) for line in stdout.splitlines()]


def test_swarm_ingress_request_and_reply(swarm_pcap):
    r = flowviz("replay", swarm_pcap, "--json")
    assert r.returncode == 0, r.stderr
    objs = objects(r.stdout)
    hops = [o for o in objs if o["type"] == "hop"]
    journeys = [o for o in objs if o["type"] == "journey"]
    assert all(HOP_FIELDS <= set(h) for h in hops)
    assert all(JOURNEY_FIELDS <= set(j) for j in journeys)
    assert len(journeys) == 2
    req = next(j for j in journeys if j["reply_to"] is None)
    rep = next(j for j in journeys if j["reply_to"] is not None)
    assert rep["reply_to"] == req["packet"]
    assert req["path"] == [
        "client/eth0", "node1/eth0", "node1/docker_gwbridge", "node1/veth8a3c2f1",
        "node1:ingress_sbox/eth1", "node1:ingress_sbox/eth0", "node1:1-mp3mrjuxu0/veth0",
        "node1:1-mp3mrjuxu0/br0", "node1:1-mp3mrjuxu0/vxlan0", "node1/eth0", "node2/eth0",
        "node2:1-mp3mrjuxu0/vxlan0", "node2:1-mp3mrjuxu0/br0", "node2:1-mp3mrjuxu0/veth1",
        "node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b/eth0",
    ]
    kinds = [c["kind"] for c in req["changes"]]
    for k in ("dnat", "snat", "mark", "encap", "decap", "veth", "bridge", "route", "deliver"):
        assert k in kinds, k
    enc = next(c for c in req["changes"] if c["kind"] == "encap")
    assert enc["vni"] == 4096 and "4789" in enc["to"]
    sbox_tx = next(h for h in hops if h["packet"] == req["packet"] and h["netns"] == "node1:ingress_sbox"
                   and h["dir"] == "tx")
    assert (sbox_tx["src"], sbox_tx["dst"], sbox_tx["dport"], sbox_tx["mark"]) == (
        "10.255.0.3", "10.255.0.33", 20229, 0x11E)
    assert {(c["kind"], c["from"], c["to"]) for c in sbox_tx["changes"]} >= {
        ("dnat", "172.18.0.2:20229", "10.255.0.33:20229"),
        ("snat", "192.168.21.11:40001", "10.255.0.3:40001"),
        ("mark", "0x0", "0x11e")}
    underlay = next(h for h in hops if h["packet"] == req["packet"] and h["vni"] is not None)
    assert underlay["proto"] == "udp" and underlay["dport"] == 4789
    assert underlay["inner"] == {"proto": "tcp", "src": "10.255.0.3", "dst": "10.255.0.33",
                                 "sport": 40001, "dport": 20229}
    rep_kinds = [c["kind"] for c in rep["changes"]]
    assert rep["path"][0].endswith("/eth0") and rep["path"][-1] == "client/eth0"
    assert "encap" in rep_kinds and "decap" in rep_kinds and "deliver" in rep_kinds


@pytest.mark.parametrize("name,journeys", [
    ("bridge-published.pcapng", 4), ("overlay-east-west.pcapng", 2), ("macvlan.pcapng", 2),
    ("host-mode.pcapng", 2), ("container-mode.pcapng", 2)])
def test_every_sample_pairs_requests_and_replies(name, journeys):
    r = flowviz("replay", sample(name), "--json")
    assert r.returncode == 0, r.stderr
    js = [o for o in objects(r.stdout) if o["type"] == "journey"]
    assert len(js) == journeys
    assert sum(1 for j in js if j["reply_to"] is not None) == journeys // 2


def test_published_port_dnat_in_bridge_mode():
    r = flowviz("replay", sample("bridge-published.pcapng"), "--json", "--dport", "8080")
    js = [o for o in objects(r.stdout) if o["type"] == "journey"]
    assert len(js) == 2   # the request (dport 8080 before the DNAT) and its reply
    dnat = next(c for c in js[0]["changes"] if c["kind"] == "dnat")
    assert (dnat["from"], dnat["to"]) == ("192.168.21.192:8080", "172.17.0.2:80")


def test_text_timeline(swarm_pcap):
    r = flowviz("replay", swarm_pcap, "--text")
    assert r.returncode == 0
    assert "packet 1" in r.stdout and "reply to packet 1" in r.stdout
    assert "encap vni 4096" in r.stdout and "mark 0x0→0x11e" in r.stdout


def test_filters_select_flows(swarm_pcap):
    assert flowviz("replay", swarm_pcap, "--json", "--dport", "9").stdout == ""
    r = flowviz("replay", swarm_pcap, "--json", "--proto", "udp", "--host", "192.168.21.193")
    assert len([o for o in objects(r.stdout) if o["type"] == "journey"]) == 2


def test_several_files_are_merged(swarm_pcap):
    r = flowviz("replay", swarm_pcap, sample("macvlan.pcapng"), "--json")
    assert len([o for o in objects(r.stdout) if o["type"] == "journey"]) == 4


# --- bad input: one line, exit 2, no traceback, nothing read is lost ----------------

def _one_line_error(r, *needles):
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0]


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    _one_line_error(flowviz("replay", str(empty)), "empty.pcap", "empty")
    text = tmp_path / "notes.txt"
    text.write_text("docker network ls\n")
    _one_line_error(flowviz("replay", str(text)), "notes.txt", "not a pcap")
    _one_line_error(flowviz("replay", str(tmp_path / "missing.pcapng")), "missing.pcapng")


def test_truncated_file_still_reports_what_was_read(tmp_path, swarm_pcap):
    data = open(swarm_pcap, "rb").read()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 40])
    r = flowviz("replay", str(cut), "--json")
    _one_line_error(r, "cut.pcapng", "truncated")
    js = [o for o in objects(r.stdout) if o["type"] == "journey"]
    assert len(js) == 2 and js[1]["hops"] == 14   # the reply lost its last sighting only


def test_bad_arguments():
    _one_line_error(flowviz("replay"), "FILE")
    _one_line_error(flowviz("replay", "x.pcap", "--dport", "70000"), "70000")
    _one_line_error(flowviz("replay", "x.pcap", "--host", "nohost"))


@pytest.mark.parametrize("args,why", [
    (("follow", "--duration", "nan"), "--duration: nan is not a finite number"),
    (("follow", "--duration", "1e400"), "--duration: 1e400 is not a finite number"),
    (("follow", "--duration", "inf"), "--duration: inf is not a finite number"),
    (("follow", "--duration", "1e12"), "--duration: 1e12 is more than"),
    (("follow", "--sample", "0"), "--sample: 0 must be more than 0"),
    (("follow", "--sample", "2.5"), "--sample: '2.5' is not a number"),
    (("follow", "--sample", "10000000"), "--sample: 10000000 is more than"),
    (("follow", "--cpu", "0"), "--cpu: 0 must be more than 0"),
    (("follow", "--cpu", "150"), "--cpu: 150 is more than 100"),
    (("follow", "--cpu", "nan"), "--cpu: nan is not a finite number"),
    (("lab", "traffic", "--rate", "nan"), "--rate: nan is not a finite number"),
    (("lab", "traffic", "--rate", "1e-9"), "--rate: 1e-9 is less than 0.01"),
    (("lab", "traffic", "--rate", "-3"), "--rate: -3 must be more than 0"),
])
def test_numeric_options_refuse_nan_infinity_and_absurd_values(args, why):
    r = flowviz(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and why in r.stderr, r.stderr
