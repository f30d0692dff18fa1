"""The reference scenarios as packets: what a per-device capture would record.

``scripts/make-captures`` writes these to ``pcaps/``; the benchmark and the
tests build from them too. Frames are made with scapy (only here, never on the
hot path). Addresses follow ../shared/seed/docker-networking-notes.txt: node1
is 192.168.21.192 with docker_gwbridge 172.18.0.1/16, ingress_sbox has
172.18.0.2 and 10.255.0.3, the task on node2 has 10.255.0.33 (ingress),
10.0.4.19 (a user overlay) and 172.18.0.9 (node2's docker_gwbridge).

Namespaces on more than one node are named ``node:role``
(``node1:ingress_sbox``); each interface is written as ``netns/device`` with
``netns= kind= master= parent= peer=`` in its description, which replay reads
back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional
from urllib.parse import quote

from .model import LINKTYPE_ETHERNET
from .pcapfile import PcapNgWriter, format_meta
from .reference import (  # noqa: F401  (the lab and tests take these through samples too)
    CLIENT_IP, INGRESS_VNI, NODE1_IP, NODE2_IP, OVERLAY_NETNS, PUBLISHED_PORT, SBOX_GW_IP, SBOX_INGRESS_IP, TASK,
    TASK_IP, USER_OVERLAY_NETNS, USER_VNI,
)

BASE_NS = 1_558_605_000_000_000_000   # 2019-05-23 09:50 UTC, the notes' day
HOP_NS = 7_000                        # a few µs per device


MAC = {
    "client": "02:42:c0:a8:15:0b",
    "n1eth0": "02:42:c0:a8:15:c0",
    "n2eth0": "02:42:c0:a8:15:c1",
    "n1gw": "02:42:e5:6e:d4:18",
    "sbox_eth1": "02:42:ac:12:00:02",
    "sbox_eth0": "02:42:0a:ff:00:03",
    "task_eth0": "02:42:0a:ff:00:21",
    "task_eth1": "02:42:0a:00:04:13",
    "taskA_eth0": "02:42:0a:00:04:0c",
    "vx1": "7e:49:77:a5:a8:32",
    "vx2": "7e:49:77:a5:a8:33",
    "docker0": "02:42:5c:1e:7a:01",
    "web": "02:42:ac:11:00:02",
    "db": "02:42:ac:11:00:03",
    "mv1": "02:42:c0:a8:15:32",
    "lo": "00:00:00:00:00:00",
}


@dataclass(frozen=True)
class Dev:
    netns: str
    name: str
    kind: str = "veth"
    master: Optional[str] = None
    parent: Optional[str] = None
    peer: Optional[str] = None
    mode: Optional[str] = None     #: the namespace's Docker network mode, when it is a container's

    def description(self) -> str:
        parts = [f"netns={quote(self.netns)}", f"kind={self.kind}"]
        for k in ("master", "parent", "peer", "mode"):
            v = getattr(self, k)
            if v:
                parts.append(f"{k}={quote(v)}")
        return " ".join(parts)


@dataclass(frozen=True)
class Sighting:
    dev: Dev
    dir: str
    frame: bytes
    mark: Optional[int] = None


def _scapy():
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    return Ether, IP, TCP, UDP, ICMP, VXLAN


def tcp_frame(smac, dmac, src, dst, sport, dport, *, ttl=64, ip_id=0, flags="S", seq=0, ack=0,
              payload=b"", df=True) -> bytes:
    Ether, IP, TCP, _, _, _ = _scapy()
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)] if "S" in flags else []
    p = (Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=ttl, id=ip_id, flags="DF" if df else 0)
         / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240, options=opts))
    if payload:
        p = p / payload
    return bytes(p)


def udp_frame(smac, dmac, src, dst, sport, dport, payload, *, ttl=64, ip_id=0) -> bytes:
    Ether, IP, _, UDP, _, _ = _scapy()
    return bytes(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=ttl, id=ip_id) /
                 UDP(sport=sport, dport=dport) / payload)


def icmp_frame(smac, dmac, src, dst, *, itype=8, ident=0x1d2e, seq=1, ttl=64, ip_id=0) -> bytes:
    Ether, IP, _, _, ICMP, _ = _scapy()
    return bytes(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=ttl, id=ip_id) /
                 ICMP(type=itype, id=ident, seq=seq) / (b"flowviz-" * 4))


def vxlan_frame(inner: bytes, smac, dmac, src, dst, vni, *, sport=51234, ip_id=0, ttl=64) -> bytes:
    Ether, IP, _, UDP, _, VXLAN = _scapy()
    return bytes(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=ttl, id=ip_id) /
                 UDP(sport=sport, dport=4789, chksum=0) / VXLAN(vni=vni, flags=0x08) / inner)


def rewrite(frame: bytes, **fields) -> bytes:
    """The same frame with some fields of its Ether/IP/TCP/UDP layers changed (checksums redone)."""
    Ether, IP, TCP, UDP, _, _ = _scapy()
    p = Ether(frame)
    for key, value in fields.items():
        layer, _, name = key.partition("_")
        target = {"eth": Ether, "ip": IP, "tcp": TCP, "udp": UDP}[layer]
        setattr(p[target], name, value)
    for layer in (IP, TCP, UDP):
        if layer in p:
            del p[layer].chksum
            if layer is UDP:
                del p[layer].len
    return bytes(p)


# --- devices of the swarm scenario -------------------------------------------

N1, N2 = "node1", "node2"
SBOX1 = f"{N1}:ingress_sbox"
OVL1, OVL2 = f"{N1}:{OVERLAY_NETNS}", f"{N2}:{OVERLAY_NETNS}"
TASK2 = f"{N2}:{TASK}"

D = {
    "client": Dev("client", "eth0", peer="underlay"),
    "n1eth0": Dev(N1, "eth0", kind="veth", peer="underlay"),
    "n2eth0": Dev(N2, "eth0", kind="veth", peer="underlay"),
    "n1gw": Dev(N1, "docker_gwbridge", kind="bridge"),
    "n1gwport": Dev(N1, "veth8a3c2f1", master="docker_gwbridge", peer=f"{SBOX1}/eth1"),
    "sbox_eth1": Dev(SBOX1, "eth1", peer=f"{N1}/veth8a3c2f1", mode="ingress_sbox"),
    "sbox_eth0": Dev(SBOX1, "eth0", peer=f"{OVL1}/veth0", mode="ingress_sbox"),
    "ovl1_veth0": Dev(OVL1, "veth0", master="br0", peer=f"{SBOX1}/eth0"),
    "ovl1_br0": Dev(OVL1, "br0", kind="bridge"),
    "ovl1_vx": Dev(OVL1, "vxlan0", kind="vxlan", master="br0"),
    "ovl2_vx": Dev(OVL2, "vxlan0", kind="vxlan", master="br0"),
    "ovl2_br0": Dev(OVL2, "br0", kind="bridge"),
    "ovl2_veth1": Dev(OVL2, "veth1", master="br0", peer=f"{TASK2}/eth0"),
    "task_eth0": Dev(TASK2, "eth0", peer=f"{OVL2}/veth1", mode="overlay"),
}



def swarm_ingress(*, sport: int = 40001, req_id: int = 0x4D2A, reply_id: int = 0x0000,
                  seq: int = 1_000_000, server_seq: int = 3_000_000, vx_sport: int = 51234) -> list[list[Sighting]]:
    """The reference path: a SYN to node1's published port and the task's SYN-ACK."""
    d = D
    syn0 = tcp_frame(MAC["client"], MAC["n1eth0"], CLIENT_IP, NODE1_IP, sport, PUBLISHED_PORT,
                     ip_id=req_id, seq=seq)
    # node1 nat PREROUTING: published port → ingress_sbox; routed onto docker_gwbridge
    syn1 = rewrite(syn0, eth_src=MAC["n1gw"], eth_dst=MAC["sbox_eth1"], ip_dst=SBOX_GW_IP, ip_ttl=63)
    # ingress_sbox: mark 0x11e, IPVS FWM 286 → 10.255.0.33 (masq), SNAT to 10.255.0.3
    syn2 = rewrite(syn1, eth_src=MAC["sbox_eth0"], eth_dst=MAC["task_eth0"], ip_src=SBOX_INGRESS_IP,
                   ip_dst=TASK_IP, ip_ttl=62)
    syn_vx = vxlan_frame(syn2, MAC["n1eth0"], MAC["n2eth0"], NODE1_IP, NODE2_IP, INGRESS_VNI,
                         sport=vx_sport, ip_id=0x1101)
    request = [
        Sighting(d["client"], "tx", syn0),
        Sighting(d["n1eth0"], "rx", syn0),
        Sighting(d["n1gw"], "tx", syn1),
        Sighting(d["n1gwport"], "tx", syn1),
        Sighting(d["sbox_eth1"], "rx", syn1, mark=0),
        Sighting(d["sbox_eth0"], "tx", syn2, mark=0x11E),
        Sighting(d["ovl1_veth0"], "rx", syn2),
        Sighting(d["ovl1_br0"], "rx", syn2),
        Sighting(d["ovl1_vx"], "tx", syn2),
        Sighting(d["n1eth0"], "tx", syn_vx),
        Sighting(d["n2eth0"], "rx", syn_vx),
        Sighting(d["ovl2_vx"], "rx", syn2),
        Sighting(d["ovl2_br0"], "rx", syn2),
        Sighting(d["ovl2_veth1"], "tx", syn2),
        Sighting(d["task_eth0"], "rx", syn2),
    ]
    sa0 = tcp_frame(MAC["task_eth0"], MAC["sbox_eth0"], TASK_IP, SBOX_INGRESS_IP, PUBLISHED_PORT, sport,
                    ip_id=reply_id, flags="SA", seq=server_seq, ack=seq + 1)
    sa_vx = vxlan_frame(sa0, MAC["n2eth0"], MAC["n1eth0"], NODE2_IP, NODE1_IP, INGRESS_VNI,
                        sport=vx_sport + 17, ip_id=0x2202)
    # ingress_sbox undoes IPVS and the SNAT: back to 172.18.0.2 → client
    sa1 = rewrite(sa0, eth_src=MAC["sbox_eth1"], eth_dst=MAC["n1gw"], ip_src=SBOX_GW_IP, ip_dst=CLIENT_IP,
                  ip_ttl=63)
    # node1 undoes the published-port DNAT
    sa2 = rewrite(sa1, eth_src=MAC["n1eth0"], eth_dst=MAC["client"], ip_src=NODE1_IP, ip_ttl=62)
    reply = [
        Sighting(d["task_eth0"], "tx", sa0),
        Sighting(d["ovl2_veth1"], "rx", sa0),
        Sighting(d["ovl2_br0"], "rx", sa0),
        Sighting(d["ovl2_vx"], "tx", sa0),
        Sighting(d["n2eth0"], "tx", sa_vx),
        Sighting(d["n1eth0"], "rx", sa_vx),
        Sighting(d["ovl1_vx"], "rx", sa0),
        Sighting(d["ovl1_br0"], "rx", sa0),
        Sighting(d["ovl1_veth0"], "tx", sa0),
        Sighting(d["sbox_eth0"], "rx", sa0, mark=0),
        Sighting(d["sbox_eth1"], "tx", sa1, mark=0),
        Sighting(d["n1gwport"], "rx", sa1),
        Sighting(d["n1gw"], "rx", sa1),
        Sighting(d["n1eth0"], "tx", sa2),
        Sighting(d["client"], "rx", sa2),
    ]
    return [request, reply]


def bridge_mode() -> list[list[Sighting]]:
    """docker0: a published port (8080 → web:80) from outside, and one container to another."""
    host_eth0 = Dev("host", "eth0", peer="lan")
    client = Dev("client", "eth0", peer="lan")
    docker0 = Dev("host", "docker0", kind="bridge")
    vweb = Dev("host", "veth3f2a1b0", master="docker0", peer="web/eth0")
    vdb = Dev("host", "veth7c9d4e2", master="docker0", peer="db/eth0")
    web = Dev("web", "eth0", peer="host/veth3f2a1b0", mode="bridge")
    db = Dev("db", "eth0", peer="host/veth7c9d4e2", mode="bridge")
    web_ip, db_ip = "172.17.0.2", "172.17.0.3"
    syn0 = tcp_frame(MAC["client"], MAC["n1eth0"], CLIENT_IP, NODE1_IP, 42000, 8080, ip_id=0x3001, seq=500)
    syn1 = rewrite(syn0, eth_src=MAC["docker0"], eth_dst=MAC["web"], ip_dst=web_ip, tcp_dport=80, ip_ttl=63)
    published = [
        Sighting(client, "tx", syn0), Sighting(host_eth0, "rx", syn0),
        Sighting(docker0, "tx", syn1), Sighting(vweb, "tx", syn1), Sighting(web, "rx", syn1),
    ]
    sa0 = tcp_frame(MAC["web"], MAC["docker0"], web_ip, CLIENT_IP, 80, 42000, ip_id=0, flags="SA",
                    seq=9000, ack=501)
    sa1 = rewrite(sa0, eth_src=MAC["n1eth0"], eth_dst=MAC["client"], ip_src=NODE1_IP, tcp_sport=8080, ip_ttl=63)
    published_reply = [
        Sighting(web, "tx", sa0), Sighting(vweb, "rx", sa0), Sighting(docker0, "rx", sa0),
        Sighting(host_eth0, "tx", sa1), Sighting(client, "rx", sa1),
    ]
    q0 = tcp_frame(MAC["db"], MAC["web"], db_ip, web_ip, 43000, 80, ip_id=0x3101, seq=700)
    east = [Sighting(db, "tx", q0), Sighting(vdb, "rx", q0), Sighting(vweb, "tx", q0), Sighting(web, "rx", q0)]
    a0 = tcp_frame(MAC["web"], MAC["db"], web_ip, db_ip, 80, 43000, ip_id=0, flags="SA", seq=12000, ack=701)
    east_reply = [Sighting(web, "tx", a0), Sighting(vweb, "rx", a0), Sighting(vdb, "tx", a0), Sighting(db, "rx", a0)]
    return [published, published_reply, east, east_reply]


def user_overlay() -> list[list[Sighting]]:
    """East-west on a user overlay (10.0.4.0/24, VNI 4097): task A on node1 → the task on node2, UDP."""
    ovl1, ovl2 = f"{N1}:{USER_OVERLAY_NETNS}", f"{N2}:{USER_OVERLAY_NETNS}"
    taskA = Dev(f"{N1}:web.1.x8k2m4n6p8q0", "eth0", peer=f"{ovl1}/veth2", mode="overlay")
    a_port = Dev(ovl1, "veth2", master="br0", peer=f"{taskA.netns}/eth0")
    br1, vx1 = Dev(ovl1, "br0", kind="bridge"), Dev(ovl1, "vxlan0", kind="vxlan", master="br0")
    br2, vx2 = Dev(ovl2, "br0", kind="bridge"), Dev(ovl2, "vxlan0", kind="vxlan", master="br0")
    b_port = Dev(ovl2, "veth3", master="br0", peer=f"{TASK2}/eth1")
    taskB = Dev(TASK2, "eth1", peer=f"{ovl2}/veth3", mode="overlay")
    n1, n2 = D["n1eth0"], D["n2eth0"]
    q = udp_frame(MAC["taskA_eth0"], MAC["task_eth1"], "10.0.4.12", "10.0.4.19", 41000, 5000, b"ping 1\n",
                  ip_id=0x5151)
    qv = vxlan_frame(q, MAC["n1eth0"], MAC["n2eth0"], NODE1_IP, NODE2_IP, USER_VNI, sport=47001, ip_id=0x1201)
    r = udp_frame(MAC["task_eth1"], MAC["taskA_eth0"], "10.0.4.19", "10.0.4.12", 5000, 41000, b"pong 1\n",
                  ip_id=0x6161)
    rv = vxlan_frame(r, MAC["n2eth0"], MAC["n1eth0"], NODE2_IP, NODE1_IP, USER_VNI, sport=47002, ip_id=0x2301)
    return [
        [Sighting(taskA, "tx", q), Sighting(a_port, "rx", q), Sighting(br1, "rx", q), Sighting(vx1, "tx", q),
         Sighting(n1, "tx", qv), Sighting(n2, "rx", qv), Sighting(vx2, "rx", q), Sighting(br2, "rx", q),
         Sighting(b_port, "tx", q), Sighting(taskB, "rx", q)],
        [Sighting(taskB, "tx", r), Sighting(b_port, "rx", r), Sighting(br2, "rx", r), Sighting(vx2, "tx", r),
         Sighting(n2, "tx", rv), Sighting(n1, "rx", rv), Sighting(vx1, "rx", r), Sighting(br1, "rx", r),
         Sighting(a_port, "tx", r), Sighting(taskA, "rx", r)],
    ]


def macvlan_mode() -> list[list[Sighting]]:
    """A container on a macvlan of the host's eth0, pinged from the LAN."""
    client = Dev("client", "eth0", peer="lan")
    parent = Dev("host", "eth0", kind="veth", peer="lan")
    mv = Dev("mv1", "eth0", kind="macvlan", parent="host/eth0", mode="macvlan")
    req = icmp_frame(MAC["client"], MAC["mv1"], CLIENT_IP, "192.168.21.50", ip_id=0x7001)
    rep = icmp_frame(MAC["mv1"], MAC["client"], "192.168.21.50", CLIENT_IP, itype=0, ip_id=0x9001)
    return [
        [Sighting(client, "tx", req), Sighting(parent, "rx", req), Sighting(mv, "rx", req)],
        [Sighting(mv, "tx", rep), Sighting(parent, "tx", rep), Sighting(client, "rx", rep)],
    ]


def host_mode() -> list[list[Sighting]]:
    """--net=host: the server listens in the host's own namespace; no veth, no NAT."""
    client = Dev("client", "eth0", peer="lan")
    eth0 = Dev("host", "eth0", peer="lan", mode="host: web")
    syn = tcp_frame(MAC["client"], MAC["n1eth0"], CLIENT_IP, NODE1_IP, 44000, 80, ip_id=0x4401, seq=100)
    sa = tcp_frame(MAC["n1eth0"], MAC["client"], NODE1_IP, CLIENT_IP, 80, 44000, flags="SA", seq=200, ack=101)
    return [[Sighting(client, "tx", syn), Sighting(eth0, "rx", syn)],
            [Sighting(eth0, "tx", sa), Sighting(client, "rx", sa)]]


def _over_lo(netns: str, mode: str, sport: int, ip_id: int, seq: int) -> list[list[Sighting]]:
    """A SYN to 127.0.0.1:80 and its SYN-ACK, each sent and received by the namespace's lo."""
    lo = Dev(netns, "lo", kind="loopback", mode=mode)
    syn = tcp_frame(MAC["lo"], MAC["lo"], "127.0.0.1", "127.0.0.1", sport, 80, ip_id=ip_id, seq=seq)
    sa = tcp_frame(MAC["lo"], MAC["lo"], "127.0.0.1", "127.0.0.1", 80, sport, flags="SA", seq=seq + 100, ack=seq + 1)
    return [[Sighting(lo, "tx", syn), Sighting(lo, "rx", syn)],
            [Sighting(lo, "tx", sa), Sighting(lo, "rx", sa)]]


def container_mode() -> list[list[Sighting]]:
    """--net=container:web: the sidecar shares web's namespace and reaches it over lo."""
    return _over_lo("web", "bridge, shared with sidecar (container:web)", 45000, 0x4501, 300)


def none_mode() -> list[list[Sighting]]:
    """--net=none: the container has only lo; what it sends to itself is all there is."""
    return _over_lo("isolated", "none", 46000, 0x4601, 500)


SCENARIOS = {
    "swarm-ingress": swarm_ingress,
    "bridge": bridge_mode,
    "overlay": user_overlay,
    "macvlan": macvlan_mode,
    "host-mode": host_mode,
    "container-mode": container_mode,
    "none-mode": none_mode,
}


def swarm_variants(count: int) -> Iterator[list[Sighting]]:
    """``count`` distinct swarm ingress request/reply pairs, quickly: the reference pair made once
    with scapy, then new IP IDs, client ports and sequence numbers patched into its bytes
    (checksums are not redone: nothing here reads them). For benchmarks and load tests."""
    import struct
    request, reply = swarm_ingress()
    for i in range(count):
        sport = 1024 + i % 60000
        seq = (1_000_000 + i * 7919) & 0xFFFFFFFF
        out = []
        for k, s in enumerate(request + reply):
            frame = bytearray(s.frame)
            ip = 14 + 20 + 8 + 8 + 14 if len(frame) > 42 and frame[14 + 9] == 17 else 14
            if k < len(request):
                struct.pack_into("!H", frame, ip + 4, i & 0xFFFF)
                struct.pack_into("!H", frame, ip + 20, sport)
                struct.pack_into("!I", frame, ip + 24, seq)
            else:
                struct.pack_into("!H", frame, ip + 4, (i + 1) & 0xFFFF)
                struct.pack_into("!H", frame, ip + 22, sport)
                struct.pack_into("!I", frame, ip + 28, (seq + 1) & 0xFFFFFFFF)
            out.append(Sighting(s.dev, s.dir, bytes(frame), s.mark))
        yield out


def write(path: str, packets: Iterable[list[Sighting]], *, start_ns: int = BASE_NS,
          gap_ns: int = 150_000) -> int:
    """Write journeys one after another (each ``gap_ns`` after the previous); returns sightings written."""
    n = 0
    with open(path, "wb") as f:
        w = PcapNgWriter(f, app="flowviz samples")
        ts = start_ns
        for sightings in packets:
            for s in sightings:
                idx = w.interface(f"{s.dev.netns}/{s.dev.name}", LINKTYPE_ETHERNET, s.dev.description())
                comment = format_meta(mark=s.mark) if s.mark is not None else None
                w.packet(idx, ts, s.frame, direction=s.dir, comment=comment)
                ts += HOP_NS
                n += 1
            ts += gap_ns
    return n


def flood(path: str, n: int, kind: str, *, payload: int = 0) -> None:
    """``n`` distinct TCP packets (another IP ID and sequence each, ``payload`` bytes each) on one
    device: ``spread`` 10 ms apart, ``same`` all at one timestamp, ``spb`` as simple packet blocks
    (no timestamps). What bounded memory is measured and tested with."""
    import struct
    base = tcp_frame("02:00:00:00:00:0a", "02:00:00:00:00:0b", "10.0.0.1", "10.0.0.2", 40000, 80,
                     payload=b"x" * payload)
    with open(path, "wb") as f:
        w = PcapNgWriter(f, app="flowviz flood")
        idx = w.interface("c1/eth0", LINKTYPE_ETHERNET)
        b = bytearray(base)
        for i in range(n):
            struct.pack_into("!H", b, 18, i & 0xFFFF)
            struct.pack_into("!I", b, 38, i)
            if kind == "spb":
                w.simple_packet(bytes(b))
            else:
                w.packet(idx, 1_000_000_000 + (i * 10_000_000 if kind == "spread" else 0), bytes(b), direction="tx")
