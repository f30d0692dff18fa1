"""Replay of captures made by real tools (dumpcap on several interfaces, tcpdump -i any,
mergecap) of real traffic through the lab's swarm ingress path."""

from __future__ import annotations

import json
import subprocess

import pytest

from captures import capturing, capturing_all
from support import flowviz
from flowviz.lab.scenarios import TARGETS
from flowviz.lab.traffic import one_request

pytestmark = pytest.mark.privileged

SPECS = [  # (lab namespace, devices, file named after the namespace's Docker role)
    ("fvlab-node1", ["eth0", "docker_gwbridge", "veth8a3c2f1"], "node1.pcapng"),
    ("fvlab-n1-sbox", ["eth1", "eth0"], "ingress_sbox.pcapng"),
    ("fvlab-n1-ingress", ["veth0", "br0", "vxlan0"], "node1-overlay.pcapng"),
    ("fvlab-node2", ["eth0"], "node2.pcapng"),
    ("fvlab-n2-ingress", ["vxlan0", "br0", "veth1"], "node2-overlay.pcapng"),
    ("fvlab-n2-task", ["eth0"], "task.pcapng"),
]


@pytest.fixture(scope="module")
def per_namespace_captures(swarm_lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("caps")
    specs = [(ns, ifs, str(d / name)) for ns, ifs, name in SPECS]
    with capturing_all(specs):
        assert one_request(TARGETS["swarm-ingress"], "tcp", timeout=3) is not None
    return [p for _, _, p in specs]


def journeys(stdout: str):
    objs = [json.loads(line) for line in stdout.splitlines()]
    return [o for o in objs if o["type"] == "journey"], [o for o in objs if o["type"] == "hop"]


def syn_journey(js, hops):
    for j in js:
        first = next(h for h in hops if h["packet"] == j["packet"] and h["seq"] == 0)
        inner = first["inner"] or first
        if j["reply_to"] is None and inner["dport"] == 20229:
            return j
    raise AssertionError("no request journey")


def test_dumpcap_per_namespace_files_replay_to_one_journey(per_namespace_captures):
    r = flowviz("replay", *per_namespace_captures, "--dport", "20229", "--json")
    assert r.returncode == 0, r.stderr
    js, hops = journeys(r.stdout)
    syn = syn_journey(js, hops)
    path = syn["path"]
    for place in ("node1/eth0", "node1/docker_gwbridge", "ingress_sbox/eth1", "ingress_sbox/eth0",
                  "node1-overlay/vxlan0", "node2/eth0", "node2-overlay/vxlan0", "task/eth0"):
        assert place in path, (place, path)
    assert path.index("ingress_sbox/eth1") < path.index("ingress_sbox/eth0") < path.index("node2/eth0")
    kinds = {c["kind"] for c in syn["changes"]}
    assert {"dnat", "snat", "encap", "decap", "route"} <= kinds
    assert {c["vni"] for c in syn["changes"] if c["kind"] in ("encap", "decap")} == {4096}
    dnats = [(c["from"], c["to"]) for c in syn["changes"] if c["kind"] == "dnat"]
    assert ("192.168.21.192:20229", "172.18.0.2:20229") in dnats
    assert ("172.18.0.2:20229", "10.255.0.33:20229") in dnats
    assert any(c["kind"] == "snat" and c["to"].startswith("10.255.0.3:") for c in syn["changes"])
    replies = [j for j in js if j["reply_to"] == syn["packet"]]
    assert replies and "task/eth0" == replies[0]["path"][0]


def test_mergecap_of_those_files_gives_the_same_journeys(per_namespace_captures, tmp_path):
    merged = str(tmp_path / "merged.pcapng")
    subprocess.run(["mergecap", "-w", merged, *per_namespace_captures], check=True)
    separate, _ = journeys(flowviz("replay", *per_namespace_captures, "--dport", "20229", "--json").stdout)
    r = flowviz("replay", merged, "--dport", "20229", "--json")
    assert r.returncode == 0, r.stderr
    js, hops = journeys(r.stdout)
    assert len(js) == len(separate)
    syn = syn_journey(js, hops)
    assert len(syn["path"]) == len(syn_journey(separate, journeys(flowviz(
        "replay", *per_namespace_captures, "--dport", "20229", "--json").stdout)[1])["path"])
    # same-named devices of different namespaces stay apart
    assert len([p for p in syn["path"] if p.split("#")[0] == "eth0"]) >= 3
    assert {"dnat", "snat", "encap", "decap"} <= {c["kind"] for c in syn["changes"]}


def test_tcpdump_any_in_ingress_sbox(swarm_lab, tmp_path):
    path = str(tmp_path / "sbox-any.pcap")
    with capturing("fvlab-n1-sbox", ["any"], path, tool="tcpdump"):
        assert one_request(TARGETS["swarm-ingress"], "tcp", timeout=3) is not None
    r = flowviz("replay", path, "--dport", "20229", "--json")
    assert r.returncode == 0, r.stderr
    js, hops = journeys(r.stdout)
    syn = syn_journey(js, hops)
    syn_hops = [h for h in hops if h["packet"] == syn["packet"]]
    assert [h["dir"] for h in syn_hops] == ["rx", "tx"]
    assert all(h["ifindex"] is not None and h["ifname"] == f"if{h['ifindex']}" for h in syn_hops)
    kinds = {c["kind"] for c in syn["changes"]}
    assert {"route", "dnat", "snat"} <= kinds
    assert any(j["reply_to"] == syn["packet"] for j in js)


def test_tcpdump_piped_into_replay_streams_journeys_as_they_happen(swarm_lab):
    """`tcpdump -i any -U -w - | flowviz replay -`: the request and its reply come out while tcpdump
    still runs, with the rewrites a file of the same capture shows."""
    import os
    import select
    import signal
    import sys
    import time
    dump = subprocess.Popen(["ip", "netns", "exec", "fvlab-n1-sbox", "tcpdump", "-Z", "root", "--immediate-mode",
                             "-i", "any", "-U", "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fv = subprocess.Popen([sys.executable, "-m", "flowviz", "replay", "-", "--dport", "20229", "--json"],
                          stdin=dump.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dump.stdout.close()   # flowviz holds the pipe now
    try:
        said = b""
        end = time.monotonic() + 20
        while b"listening on" not in said and time.monotonic() < end:
            if select.select([dump.stderr], [], [], 0.5)[0]:
                said += os.read(dump.stderr.fileno(), 4096)
        assert b"listening on" in said, said
        time.sleep(1.0)   # tcpdump announces itself a little before its socket sees packets
        assert one_request(TARGETS["swarm-ingress"], "tcp", timeout=3) is not None
        out = b""
        end = time.monotonic() + 60
        while time.monotonic() < end:
            js, hops = journeys(out.decode())
            if any(j["reply_to"] is not None for j in js):
                break
            if select.select([fv.stdout], [], [], 0.5)[0]:
                out += os.read(fv.stdout.fileno(), 65536)
        assert dump.poll() is None and fv.poll() is None   # both still running: this was streamed
    finally:
        if dump.poll() is None:
            dump.send_signal(signal.SIGINT)
        dump.wait(timeout=20)
        rest, err = fv.communicate(timeout=60)
    assert fv.returncode == 0, err
    js, hops = journeys((out + rest).decode())
    syn = syn_journey(js, hops)
    assert {"route", "dnat", "snat"} <= {c["kind"] for c in syn["changes"]}
    assert any(j["reply_to"] == syn["packet"] for j in js)
