"""A real Docker engine: `flowviz topo` names what `docker inspect` and `ip -d link` say, and
`flowviz follow` reports the exact hops of real containers' packets in every network mode."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from dockerd import BRIDGE, BRIDGE_ADDR, ECHO, IMAGE, LABEL, ip_of, netns_path, request, wait_listening
from livetools import following
from support import flowviz

pytestmark = [pytest.mark.privileged, pytest.mark.docker]


def run(engine, name, command=ECHO, **kw):
    return engine.client.containers.run(IMAGE, command, name=name, detach=True, labels=LABEL, **kw)


def root_links() -> dict:
    return {l["ifindex"]: l for l in json.loads(subprocess.run(["ip", "-j", "-d", "link", "show"],
                                                               capture_output=True, text=True).stdout)}


def host_veth(container) -> str:
    """The host end of a container's eth0, by its peer index (what `@ifNN` shows)."""
    from pyroute2 import IPRoute
    from flowviz.netns import entered
    with entered(netns_path(container)):
        ipr = IPRoute()
    with ipr:
        peer_index = ipr.get_links(ifname="eth0")[0].get_attr("IFLA_LINK")
    return root_links()[peer_index]["ifname"]


@pytest.fixture(scope="module")
def outside():
    """A namespace of the test's own, wired to the host, to reach published ports from 'outside'."""
    sh = lambda *a: subprocess.run(list(a), check=True, capture_output=True)   # noqa: E731
    subprocess.run(["ip", "netns", "del", "fvt-outside"], capture_output=True)
    sh("ip", "netns", "add", "fvt-outside")
    try:
        sh("ip", "link", "add", "fvt-out0", "type", "veth", "peer", "name", "eth0", "netns", "fvt-outside")
        sh("ip", "addr", "add", "10.98.0.1/24", "dev", "fvt-out0")
        sh("ip", "link", "set", "fvt-out0", "up")
        sh("ip", "-n", "fvt-outside", "addr", "add", "10.98.0.2/24", "dev", "eth0")
        sh("ip", "-n", "fvt-outside", "link", "set", "eth0", "up")
        sh("ip", "-n", "fvt-outside", "link", "set", "lo", "up")
        yield "/run/netns/fvt-outside"
    finally:
        subprocess.run(["ip", "netns", "del", "fvt-outside"], capture_output=True)


@pytest.fixture(scope="module")
def world(docker_engine, outside):
    """Containers in every mode (the swarm comes later, in its own fixture)."""
    e = docker_engine
    c = e.client
    w = {}
    w["web"] = run(e, "fvt-web", ports={"80/tcp": 8080})
    w["client"] = run(e, "fvt-client", ["/bin/sleep", "3600"])
    import docker
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.96.0.0/24")])
    w["net"] = c.networks.create("fvt-net", driver="bridge", ipam=ipam, labels=LABEL)
    w["uweb"] = run(e, "fvt-uweb", network="fvt-net")
    w["uclient"] = run(e, "fvt-uclient", ["/bin/sleep", "3600"], network="fvt-net")
    subprocess.run(["ip", "link", "add", "fvt-mvp0", "type", "veth", "peer", "name", "fvt-mvp1"], check=True)
    subprocess.run(["ip", "link", "set", "fvt-mvp0", "up"], check=True)
    subprocess.run(["ip", "link", "set", "fvt-mvp1", "up"], check=True)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.97.0.0/24", gateway="10.97.0.1")])
    w["mvnet"] = c.networks.create("fvt-mvnet", driver="macvlan", options={"parent": "fvt-mvp0"}, ipam=ipam,
                                   labels=LABEL)
    w["mv1"] = run(e, "fvt-mv1", network="fvt-mvnet")
    w["mv2"] = run(e, "fvt-mv2", ["/bin/sleep", "3600"], network="fvt-mvnet")
    w["hostsrv"] = run(e, "fvt-hostsrv", ["/bin/nc", "-ll", "-p", "18081", "-e", "/bin/cat"], network_mode="host")
    w["none"] = run(e, "fvt-none", network_mode="none")
    w["side"] = run(e, "fvt-side", ["/bin/sleep", "3600"], network_mode="container:fvt-web")
    for name, addr, port in (("web", ip_of(w["web"], "bridge"), 80), ("uweb", ip_of(w["uweb"], "fvt-net"), 80),
                             ("mv1", ip_of(w["mv1"], "fvt-mvnet"), 80)):
        wait_listening(netns_path(w["client" if name == "web" else "uclient" if name == "uweb" else "mv2"]),
                       addr, port)
    wait_listening(netns_path(w["none"]), "127.0.0.1", 80)
    try:
        yield w
    finally:
        subprocess.run(["ip", "link", "del", "fvt-mvp0"], capture_output=True)


def places(f, packet) -> list[tuple]:
    return [(h["netns"], h["ifname"], h["dir"]) for h in f.hops(packet)]


def kinds(f, packet) -> list[list[str]]:
    return [[c["kind"] for c in h["changes"]] for h in f.hops(packet)]


def first_request(f):
    js = [j for j in f.journeys() if j["reply_to"] is None]
    assert js, f.stderr
    return min(js, key=lambda j: j["start_ns"])["packet"]


def follow_one(args, send):
    with following(*args, "--json") as f:
        send()
        time.sleep(1.5)
    assert f.returncode == 0, f.stderr
    return f, first_request(f)


# --- topology -----------------------------------------------------------------------

def test_topo_names_every_container_its_mode_peers_and_bridges(world):
    topo = json.loads(flowviz("topo", "--json", check=True).stdout)
    by_name = {n["netns"]: n for n in topo["namespaces"]}
    expect = {"fvt-web": "bridge", "fvt-client": "bridge", "fvt-uweb": "user bridge", "fvt-uclient": "user bridge",
              "fvt-mv1": "macvlan", "fvt-mv2": "macvlan", "fvt-none": "none"}
    for name, mode in expect.items():
        ns = by_name[name]
        assert {"name": name, "mode": mode} in [{"name": c["name"], "mode": c["mode"]} for c in ns["containers"]]
    assert {"fvt-side": "container:fvt-web"} == {c["name"]: c["mode"] for c in by_name["fvt-web"]["containers"]
                                                 if c["name"] == "fvt-side"}
    assert any(c["name"] == "fvt-hostsrv" and c["mode"] == "host" for c in by_name["host"]["containers"])
    host_links = {l["ifname"]: l for l in by_name["host"]["links"]}
    bridge_of = {"fvt-web": BRIDGE, "fvt-client": BRIDGE,
                 "fvt-uweb": f"br-{world['net'].id[:12]}", "fvt-uclient": f"br-{world['net'].id[:12]}"}
    for name, bridge in bridge_of.items():
        ct = world[name.removeprefix("fvt-")]
        eth0 = next(l for l in by_name[name]["links"] if l["ifname"] == "eth0")
        veth = host_veth(ct)
        assert eth0["peer"] == {"netns": "host", "ifindex": host_links[veth]["ifindex"], "ifname": veth}
        assert host_links[veth]["master"] == bridge == root_links()[host_links[veth]["ifindex"]]["master"]
        network = "bridge" if bridge == BRIDGE else "fvt-net"
        assert eth0["addresses"][0].split("/")[0] == ip_of(ct, network)
    for name in ("fvt-mv1", "fvt-mv2"):
        eth0 = next(l for l in by_name[name]["links"] if l["ifname"] == "eth0")
        assert eth0["kind"] == "macvlan" and eth0["parent"]["netns"] == "host"
        assert eth0["parent"]["ifname"] == "fvt-mvp0" and eth0["macvlan_mode"] == "bridge"
    assert [l["ifname"] for l in by_name["fvt-none"]["links"]] == ["lo"]
    nets = {n["name"]: n for n in topo["docker"]["networks"]}
    assert nets["bridge"]["bridge"] == BRIDGE and nets["fvt-net"]["bridge"] == f"br-{world['net'].id[:12]}"


# --- follow, mode by mode ----------------------------------------------------------------

def test_bridge_container_to_container(world):
    web_ip = ip_of(world["web"], "bridge")
    f, p = follow_one(["--dport", "80", "--host", web_ip],
                      lambda: request(netns_path(world["client"]), web_ip, 80))
    vc, vw = host_veth(world["client"]), host_veth(world["web"])
    assert places(f, p) == [("fvt-client", "eth0", "tx"), ("host", vc, "rx"), ("host", vw, "tx"),
                            ("fvt-web", "eth0", "rx")]
    assert kinds(f, p) == [[], ["veth"], ["bridge"], ["veth", "deliver"]]
    hops = f.hops(p)
    assert hops[2]["changes"][0]["via"] == BRIDGE
    assert hops[0]["mode"] == "bridge" and hops[3]["mode"].startswith("bridge")


def test_published_port_from_outside(world, outside):
    web_ip = ip_of(world["web"], "bridge")
    f, p = follow_one(["--dport", "8080"], lambda: request(outside, "10.98.0.1", 8080))
    vw = host_veth(world["web"])
    assert places(f, p) == [("fvt-outside", "eth0", "tx"), ("host", "fvt-out0", "rx"), ("host", BRIDGE, "tx"),
                            ("host", vw, "tx"), ("fvt-web", "eth0", "rx")]
    dnat = next(c for c in f.hops(p)[2]["changes"] if c["kind"] == "dnat")
    assert (dnat["from"], dnat["to"]) == ("10.98.0.1:8080", f"{web_ip}:80")
    assert any(j["reply_to"] == p for j in f.journeys())


def test_user_defined_bridge(world):
    ip = ip_of(world["uweb"], "fvt-net")
    f, p = follow_one(["--dport", "80", "--host", ip], lambda: request(netns_path(world["uclient"]), ip, 80))
    br = f"br-{world['net'].id[:12]}"
    assert places(f, p) == [("fvt-uclient", "eth0", "tx"), ("host", host_veth(world["uclient"]), "rx"),
                            ("host", host_veth(world["uweb"]), "tx"), ("fvt-uweb", "eth0", "rx")]
    assert f.hops(p)[2]["changes"][0]["via"] == br
    assert f.hops(p)[0]["mode"] == "user bridge"


def test_macvlan_on_a_veth_parent(world):
    ip = ip_of(world["mv1"], "fvt-mvnet")
    f, p = follow_one(["--dport", "80", "--host", ip], lambda: request(netns_path(world["mv2"]), ip, 80))
    # bridge mode hands a frame for a sibling to the parent first ("for its network taps"), whose
    # rx handler passes it to the sibling (drivers/net/macvlan.c) without a receive tracepoint:
    # that last hop is inferred from the frame's MAC, and says so
    assert places(f, p) == [("fvt-mv2", "eth0", "tx"), ("host", "fvt-mvp0", "rx"), ("fvt-mv1", "eth0", "rx")]
    assert f.hops(p)[2]["hook"] == "macvlan (rx handler)"
    for hop in f.hops(p)[1:]:
        change = hop["changes"][0]
        assert change["kind"] == "bridge" and change["via"] == "fvt-mvp0 (macvlan)"
    assert f.hops(p)[0]["mode"] == "macvlan" and f.hops(p)[2]["mode"] == "macvlan"


def test_host_mode(world):
    f, p = follow_one(["--dport", "18081"], lambda: request(netns_path(world["client"]), BRIDGE_ADDR.split("/")[0], 18081))
    assert places(f, p) == [("fvt-client", "eth0", "tx"), ("host", host_veth(world["client"]), "rx"),
                            ("host", BRIDGE, "rx")]
    assert kinds(f, p)[-1] == ["bridge", "deliver"]
    assert f.hops(p)[-1]["mode"] == "host: fvt-hostsrv"


def test_none_mode(world):
    f, p = follow_one(["--dport", "80", "--netns", "fvt-none"],
                      lambda: request(netns_path(world["none"]), "127.0.0.1", 80))
    assert places(f, p) == [("fvt-none", "lo", "tx"), ("fvt-none", "lo", "rx")]
    assert kinds(f, p)[-1] == ["deliver"] and f.hops(p)[0]["mode"] == "none"


def test_container_mode(world):
    f, p = follow_one(["--dport", "80", "--netns", "fvt-side"],
                      lambda: request(netns_path(world["side"]), "127.0.0.1", 80))
    assert places(f, p) == [("fvt-web", "lo", "tx"), ("fvt-web", "lo", "rx")]
    assert f.hops(p)[0]["mode"] == "bridge, shared with fvt-side (container:fvt-web)"


def test_text_output_names_the_mode(world):
    web_ip = ip_of(world["web"], "bridge")
    with following("--dport", "80", "--host", web_ip, "--text") as f:
        request(netns_path(world["client"]), web_ip, 80)
        time.sleep(1.5)
    assert "fvt-client [bridge]" in f.stdout and f"bridge {BRIDGE}" in f.stdout


def test_a_container_started_during_a_follow_gets_its_name(docker_engine, world):
    web_ip = ip_of(world["web"], "bridge")
    with following("--dport", "80", "--host", web_ip, "--json") as f:
        late = run(docker_engine, "fvt-late", ["/bin/sleep", "3600"])
        request(netns_path(late), web_ip, 80)
        time.sleep(1.5)
    p = first_request(f)
    assert places(f, p)[0] == ("fvt-late", "eth0", "tx") and f.hops(p)[0]["mode"] == "bridge"
    late.remove(force=True)


# --- swarm, single node --------------------------------------------------------------------

def _advertise_addr() -> str:
    out = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True,
                                    text=True).stdout)
    for link in out:
        if link["ifname"].startswith(("docker", "br-", "veth", "fvt-")):
            continue
        for a in link.get("addr_info", []):
            return a["local"]
    raise RuntimeError("no global IPv4 address to advertise the swarm on")


@pytest.fixture(scope="module")
def swarm(docker_engine, world):
    import docker
    c = docker_engine.client
    c.swarm.init(advertise_addr=_advertise_addr())
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.95.0.0/24")])
    net = c.networks.create("fvt-appnet", driver="overlay", attachable=True, ipam=ipam, labels=LABEL)
    svc = c.services.create(IMAGE, ECHO, name="fvt-svc", networks=["fvt-appnet"], labels=LABEL,
                            mode=docker.types.ServiceMode("replicated", replicas=2))
    deadline = time.monotonic() + 90
    while True:
        tasks = [ct for ct in c.containers.list() if ct.name.startswith("fvt-svc.")]
        if len(tasks) == 2 and all("fvt-appnet" in (ct.attrs["NetworkSettings"]["Networks"] or {}) for ct in tasks):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the swarm service did not start two tasks")
        time.sleep(1)
    a, b = sorted(tasks, key=lambda ct: ct.name)
    wait_listening(netns_path(a), ip_of(b, "fvt-appnet"), 80, timeout=30)
    yield {"net": net, "a": a, "b": b, "svc": svc}


def test_swarm_topology_names_the_sandboxes(swarm):
    topo = json.loads(flowviz("topo", "--json", check=True).stdout)
    by_name = {n["netns"]: n for n in topo["namespaces"]}
    overlay = f"1-{swarm['net'].id[:10]}"
    assert by_name[overlay]["role"] == "overlay" and by_name[overlay]["network"] == "fvt-appnet"
    assert by_name["ingress_sbox"]["role"] == "ingress_sbox"
    assert any(l["ifname"] == "docker_gwbridge" for l in by_name["host"]["links"])
    vx = next(l for l in by_name[overlay]["links"] if l["kind"] == "vxlan")
    assert vx["vxlan"]["vni"] == next(n for n in topo["docker"]["networks"] if n["name"] == "fvt-appnet")["vni"]
    for task in (swarm["a"], swarm["b"]):
        assert by_name[task.name]["containers"][0]["mode"] == "overlay"


def test_swarm_overlay_between_two_tasks(swarm):
    a, b = swarm["a"], swarm["b"]
    ip = ip_of(b, "fvt-appnet")
    f, p = follow_one(["--dport", "80", "--host", ip], lambda: request(netns_path(a), ip, 80))
    overlay = f"1-{swarm['net'].id[:10]}"
    got = places(f, p)
    assert got[0] == (a.name, "eth0", "tx") and got[-1] == (b.name, "eth0", "rx")
    assert [g[0] for g in got[1:-1]] == [overlay, overlay]
    assert kinds(f, p) == [[], ["veth"], ["bridge"], ["veth", "deliver"]]
    assert f.hops(p)[2]["changes"][0]["via"] == "br0"
    assert f.hops(p)[0]["mode"] == "overlay" and f.hops(p)[1]["mode"] == "overlay fvt-appnet"


def test_doctor_says_whether_the_routing_mesh_can_run(swarm):
    r = flowviz("doctor")
    ipvs = next(line for line in r.stdout.splitlines() if line.split()[1:2] == ["IPVS"])
    if os.path.exists("/proc/net/ip_vs"):
        assert "present" in ipvs
    else:
        assert "routing mesh" in ipvs and "emulates" in ipvs
