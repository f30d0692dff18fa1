"""iptables rules as Docker writes them, evaluated for one packet."""

from __future__ import annotations

from flowviz.topology.docker import network_mode
from flowviz.topology.rules import Packet, parse, run_chain

NODE_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER-INGRESS - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS
-A POSTROUTING -o docker_gwbridge -m addrtype --src-type LOCAL -j MASQUERADE
-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE
-A DOCKER-INGRESS -p tcp -m tcp --dport 20229 -j DNAT --to-destination 172.18.0.2:20229
-A DOCKER-INGRESS -j RETURN
COMMIT""".splitlines()

SBOX_MANGLE = ["-A PREROUTING -p tcp -m tcp --dport 20229 -j MARK --set-xmark 0x11e/0xffffffff"]
SBOX_NAT = ["-A POSTROUTING -d 10.255.0.0/16 -m ipvs --ipvs -j SNAT --to-source 10.255.0.3",
            "-A POSTROUTING -d 10.255.0.0/16 -m mark --mark 0x11e -j SNAT --to-source 10.255.0.3"]


def local(*addrs):
    return lambda a: a in addrs


def test_published_port_dnat_through_a_user_chain():
    p = Packet("tcp", "192.168.21.11", "192.168.21.192", 40000, 20229, in_dev="eth0")
    verdict, eff = run_chain(parse(NODE_NAT), "PREROUTING", p, local("192.168.21.192"))
    assert verdict == "DNAT" and (p.dst, p.dport) == ("172.18.0.2", 20229)
    assert (eff[0].kind, eff[0].before, eff[0].after) == ("dnat", "192.168.21.192:20229", "172.18.0.2:20229")


def test_not_local_or_other_port_is_untouched():
    for p in (Packet("tcp", "1.1.1.1", "192.168.21.192", 1, 80), Packet("tcp", "1.1.1.1", "10.0.0.9", 1, 20229)):
        verdict, eff = run_chain(parse(NODE_NAT), "PREROUTING", p, local("192.168.21.192"))
        assert verdict is None and eff == []


def test_negated_interface_and_masquerade():
    p = Packet("tcp", "172.18.0.9", "8.8.8.8", 5, 53, out_dev="eth0")
    verdict, eff = run_chain(parse(NODE_NAT), "POSTROUTING", p, local(), masquerade_src="192.168.21.192")
    assert verdict == "MASQUERADE" and p.src == "192.168.21.192"
    p = Packet("tcp", "172.18.0.9", "172.18.0.2", 5, 53, out_dev="docker_gwbridge")
    assert run_chain(parse(NODE_NAT), "POSTROUTING", p, local())[0] is None


def test_mark_then_ipvs_snat():
    p = Packet("tcp", "192.168.21.11", "172.18.0.2", 40000, 20229)
    run_chain(parse(SBOX_MANGLE), "PREROUTING", p, local())
    assert p.mark == 0x11E
    p.dst = "10.255.0.33"
    p.ipvs = True
    verdict, eff = run_chain(parse(SBOX_NAT), "POSTROUTING", p, local())
    assert verdict == "SNAT" and p.src == "10.255.0.3" and "--ipvs" in eff[0].rule.text
    q = Packet("tcp", "192.168.21.11", "10.255.0.33", 40000, 20229, mark=0x11E)   # the lab's emulation
    assert run_chain(parse(SBOX_NAT), "POSTROUTING", q, local())[0] == "SNAT"


def test_a_match_not_understood_never_matches():
    rules = parse(["-A PREROUTING -m conntrack --ctstate NEW -j DNAT --to-destination 1.2.3.4"])
    assert rules["PREROUTING"][0].unknown == ["--ctstate"]
    p = Packet("tcp", "1.1.1.1", "2.2.2.2", 1, 2)
    assert run_chain(rules, "PREROUTING", p, local())[0] is None


def _attrs(mode, nets):
    return {"HostConfig": {"NetworkMode": mode}, "NetworkSettings": {"Networks": {n: {} for n in nets}}}


def test_docker_network_modes():
    drivers = {"bridge": "bridge", "mynet": "bridge", "appnet": "overlay", "ingress": "overlay", "lan": "macvlan",
               "host": "host", "none": "null"}
    ids = {"4b805190a52b793ee947654e2dc290535c17d134d52391a4ac53fc22ada7056b": "web"}
    assert network_mode(_attrs("host", ["host"]), drivers, ids) == "host"
    assert network_mode(_attrs("none", ["none"]), drivers, ids) == "none"
    assert network_mode(_attrs("container:4b805190a52b", []), drivers, ids) == "container:web"
    assert network_mode(_attrs("default", ["bridge"]), drivers, ids) == "bridge"
    assert network_mode(_attrs("mynet", ["mynet"]), drivers, ids) == "user bridge"
    assert network_mode(_attrs("default", ["appnet", "ingress"]), drivers, ids) == "overlay"
    assert network_mode(_attrs("lan", ["lan"]), drivers, ids) == "macvlan"
