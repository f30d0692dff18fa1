"""A real Docker swarm's routing mesh, followed: a published port through docker_gwbridge,
ingress_sbox (mark, real IPVS, SNAT) and the ingress overlay into the task.

Needs real IPVS and kprobes: runs in the stock-kernel stage (scripts/vmtest), where dockerd
runs on the guest's own memory-backed /var and /run and nothing reaches the host.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from dockerd import ECHO, IMAGE, LABEL, request
from livetools import following
from support import flowviz, needs_stock_kernel

pytestmark = [pytest.mark.privileged, pytest.mark.docker, pytest.mark.slow, needs_stock_kernel]
PORT = 20229
ROOT_NS = "/proc/1/ns/net"


@pytest.fixture(scope="module")
def mesh(docker_engine):
    import docker
    c = docker_engine.client
    c.swarm.init(advertise_addr="127.0.0.1")
    svc = c.services.create(IMAGE, ECHO, name="fvt-web", labels=LABEL,
                            endpoint_spec=docker.types.EndpointSpec(ports={PORT: 80}))
    deadline = time.monotonic() + 240
    task = None
    while time.monotonic() < deadline:
        running = c.containers.list(filters={"label": "com.docker.swarm.service.name=fvt-web"})
        if running:
            task = running[0]
            try:
                if request(ROOT_NS, "127.0.0.1", PORT, timeout=2) == b"hello flowviz\n":
                    break
            except OSError:
                pass
        time.sleep(1)
    else:
        raise RuntimeError("the routing mesh never answered on 127.0.0.1:20229")
    task.reload()
    ingress_ip = task.attrs["NetworkSettings"]["Networks"]["ingress"]["IPAddress"]
    yield {"svc": svc, "task": task, "ip": ingress_ip, "name": task.name}


@pytest.fixture(scope="module")
def followed(mesh):
    with following("--dport", str(PORT), "--json") as f:
        assert request(ROOT_NS, "127.0.0.1", PORT) == b"hello flowviz\n"
        time.sleep(1.5)
    assert f.returncode == 0, f.stderr
    return f


def _request(f):
    reqs = [j for j in f.journeys() if j["reply_to"] is None and any("ingress_sbox" in p for p in j["path"])
            and any(c["kind"] == "ipvs" for c in j["changes"])]
    assert reqs, [j["path"] for j in f.journeys()]
    return min(reqs, key=lambda j: j["start_ns"])


def test_the_request_goes_through_ingress_sbox_and_real_ipvs_into_the_task(followed, mesh):
    syn = _request(followed)
    hops = followed.hops(syn["packet"])
    seen = [(h["netns"], h["ifname"], h["dir"]) for h in hops]
    overlay = next(h["netns"] for h in hops if (h["netns"] or "").startswith("1-"))
    # from the host through docker_gwbridge into ingress_sbox, out on the ingress overlay,
    # across its bridge br0 and into the task: (namespace, device pattern, direction)
    expected = [("host", "docker_gwbridge", "tx"), ("host", r"veth\w+", "tx"),
                ("ingress_sbox", "eth1", "rx"), ("ingress_sbox", "eth0", "tx"),
                (overlay, r"veth\w+", "rx"), (overlay, r"veth\w+", "tx"), (mesh["name"], "eth0", "rx")]
    assert len(seen) == len(expected) and all(
        ns == want_ns and re.fullmatch(dev_re, dev) and d == want_d
        for (ns, dev, d), (want_ns, dev_re, want_d) in zip(seen, expected)), seen
    kinds = [[c["kind"] for c in h["changes"]] for h in hops]
    assert "bridge" in kinds[1] and "veth" in kinds[2] and "veth" in kinds[4] and "bridge" in kinds[5], kinds
    out = hops[3]
    assert "mark" in kinds[3] and "snat" in kinds[3] and "ipvs" in kinds[3] and "dnat" not in kinds[3], kinds[3]
    ipvs = next(c for c in out["changes"] if c["kind"] == "ipvs")["note"]
    # a fwmark service's real server keeps the published port (IPVS dest port 0); the task's own nat
    # table redirects 20229 to 80 once the packet is in, after its last sighting
    assert ipvs["real"] == mesh["ip"] and ipvs["real_port"] == PORT and ipvs["scheduler"] == "rr"
    assert ipvs["fwmark"] == out["mark"] and ipvs["fwmark"] > 0 and ipvs["new"] is True
    assert (out["dst"], out["dport"]) == (mesh["ip"], PORT)
    snat = next(c for c in out["changes"] if c["kind"] == "snat")["note"]
    assert snat["manip"] == "snat" and snat["hook"] == "postrouting"
    bridge = next(c for c in hops[5]["changes"] if c["kind"] == "bridge")["note"]
    assert bridge["bridge"] == "br0" and bridge["port"] == hops[5]["ifname"] and bridge["flood"] is False
    assert kinds[6][-1] == "deliver"
    assert hops[6]["mode"] == "overlay"


def test_the_reply_is_linked_and_rewritten_back_by_ipvs(followed, mesh):
    syn = _request(followed)
    replies = [j for j in followed.journeys() if j["reply_to"] == syn["packet"]]
    assert replies
    hops = followed.hops(replies[0]["packet"])
    assert hops[0]["netns"] == mesh["name"]
    back = [c for h in hops for c in h["changes"] if c["kind"] == "ipvs"]
    assert back and back[0]["note"]["reply"] is True and back[0]["note"]["real"] == mesh["ip"]


def test_topo_path_lists_the_same_path_from_the_real_ipvs_table(mesh):
    r = flowviz("topo", "--path", "--dport", str(PORT), "--to", "127.0.0.1", "--json", check=True)
    hops = json.loads(r.stdout)["hops"]
    places = [(h["netns"], h["ifname"]) for h in hops]
    assert ("ingress_sbox", "eth0") in places and (mesh["name"], "eth0") in places, places
    notes = " ".join(n for h in hops for n in h.get("notes", []))
    assert "ipvs FWM" in notes and mesh["ip"] in notes
