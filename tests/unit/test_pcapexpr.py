"""tcpdump expressions in replay: the packets an expression selects are the ones `tcpdump -r FILE EXPR`
selects, over the sample captures and a capture of the kinds they lack (VLAN, IPv6, ICMP, ARP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from flowviz.errors import BadInput
from flowviz.pcapexpr import Expression
from flowviz.pcapfile import PcapNgWriter, read_capture
from flowviz.samples import icmp_frame, tcp_frame
from support import flowviz, sample

SAMPLES = ["swarm-ingress.pcapng", "bridge-published.pcapng", "overlay-east-west.pcapng", "macvlan.pcapng",
           "host-mode.pcapng", "container-mode.pcapng"]

EXPRESSIONS = [
    "tcp", "udp", "icmp", "arp", "ip", "ip6", "vlan", "not ip",
    "host 10.255.0.33", "src host 192.168.21.11", "dst host 172.18.0.2", "host 10.0.4.19 and host 10.0.4.12",
    "net 10.0.0.0/8", "src net 192.168.21.0/24", "not net 172.16.0.0/12",
    "port 20229", "tcp dst port 20229", "udp port 4789", "src port 80", "portrange 20000-20300",
    "tcp portrange 1-1023", "udp and not port 4789",
    "tcp port 20229 and host 10.255.0.33", "(tcp or udp) and not (port 80 or port 4789)",
    "host 10.0.4.19 or (udp and dst port 5000)", "not (tcp or udp or icmp)",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[tcpflags] & tcp-fin != 0",
    "ip[8] < 64", "ip[9] == 17", "len > 100", "less 80", "greater 1000",
    "icmp[icmptype] == icmp-echo", "icmp[icmptype] == icmp-echoreply", "ether host 02:00:00:00:00:0a",
    "ether broadcast", "vlan 100 and tcp", "vlan and udp port 53", "ip6 and tcp port 443", "icmp6",
    "arp and arp[7] == 1",
]

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


@pytest.fixture(scope="module")
def mixed_capture(tmp_path_factory) -> str:
    """What the samples lack: VLAN tags, IPv6, ICMP echo and reply, ARP, broadcast, a FIN."""
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    frames = [
        bytes(Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=443)),
        tcp_frame(A, B, "10.1.0.1", "10.1.0.2", 40000, 443, ip_id=1, flags="FA", seq=9, ack=7),
        bytes(Ether(src=A, dst=B) / Dot1Q(vlan=100) / IP(src="10.1.0.1", dst="10.1.0.2", id=2) / TCP(dport=80)),
        bytes(Ether(src=A, dst=B) / Dot1Q(vlan=7) / IP(src="10.1.0.1", dst="10.9.9.9", id=3)
              / UDP(sport=5353, dport=53) / (b"q" * 20)),
        bytes(Ether(src=B, dst=A) / IPv6(src="fd00::2", dst="fd00::1") / ICMPv6EchoRequest()),
        icmp_frame(A, B, "10.1.0.1", "10.1.0.2", itype=8, ttl=30),
        icmp_frame(B, A, "10.1.0.2", "10.1.0.1", itype=0, ttl=200),
        bytes(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=A, psrc="10.1.0.1", pdst="10.1.0.2")),
        bytes(Ether(src=B, dst=A) / ARP(op=2, hwsrc=B, psrc="10.1.0.2", pdst="10.1.0.1", hwdst=A)),
        tcp_frame(A, B, "10.1.0.1", "10.1.0.2", 40002, 22, ip_id=4, payload=b"x" * 1200),
        bytes(Ether(src=A, dst=B) / Dot1Q(vlan=100) / IP(src="10.1.0.1", dst="10.1.0.2", id=5)
              / UDP(sport=40003, dport=53) / b"q"),
    ]
    path = str(tmp_path_factory.mktemp("mixed") / "mixed.pcapng")
    with open(path, "wb") as f:
        w = PcapNgWriter(f)
        idx = w.interface("eth0", 1)
        for i, fr in enumerate(frames):
            w.packet(idx, 1_000_000_000 + i * 1000, fr)
    return path


def _tcpdump_selects(path: str, expr: str, tmp_path) -> list[bytes]:
    out = str(tmp_path / "sel.pcap")
    r = subprocess.run(["tcpdump", "-r", path, "-w", out, expr], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [rec.data for rec in read_capture(out)] if os.path.getsize(out) > 24 else []


def _flowviz_selects(path: str, expr: Expression) -> list[bytes]:
    return [rec.data for rec in read_capture(path) if expr.matches_bytes(rec.data, rec.iface.linktype, rec.orig_len)]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed: scripts/setup --tests")
@pytest.mark.parametrize("text", EXPRESSIONS)
def test_an_expression_selects_the_packets_tcpdump_selects(text, mixed_capture, tmp_path):
    expr = Expression(text)
    for path in [sample(n) for n in SAMPLES] + [mixed_capture]:
        assert _flowviz_selects(path, expr) == _tcpdump_selects(path, text, tmp_path), (text, path)


def test_the_expressions_select_something_and_not_everything(mixed_capture):
    """Guards the comparison above against agreeing on nothing."""
    paths = [sample(n) for n in SAMPLES] + [mixed_capture]
    total = sum(len(list(read_capture(p))) for p in paths)
    for text in EXPRESSIONS:
        n = sum(len(_flowviz_selects(p, Expression(text))) for p in paths)
        assert 0 < n < total, text


def test_inside_vxlan_the_inner_frame_is_matched_too(tmp_path):
    """tcpdump sees only the outer packet of a VXLAN frame; flowviz also looks inside (documented)."""
    path = sample("overlay-east-west.pcapng")
    expr = Expression("host 10.0.4.19 and udp port 5000")
    wrapped = [e for e in _events(path) if e[1].vxlan is not None]
    assert wrapped
    for data, frame in wrapped:
        assert not expr.matches_bytes(data, 1)                   # what tcpdump would say
        assert expr.matches(data, 1, len(data), frame)           # what flowviz says
    r = flowviz("replay", path, "-f", "host 10.0.4.19 and udp port 5000", "--json", check=True)
    journeys = [json.loads(l) for l in r.stdout.splitlines() if '"journey"' in l]
    assert journeys and all(any("vxlan0" in p for p in j["path"]) for j in journeys)


def _events(path):
    from flowviz.decode import decode
    return [(rec.data, decode(rec.data, rec.iface.linktype)) for rec in read_capture(path)]


def test_replay_with_an_expression_gives_the_flow_and_its_replies(swarm_pcap):
    r = flowviz("replay", swarm_pcap, "-f", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "--json", check=True)
    journeys = [json.loads(l) for l in r.stdout.splitlines() if '"journey"' in l]
    assert len(journeys) == 2 and journeys[1]["reply_to"] == journeys[0]["packet"]   # the SYN, and its reply
    r = flowviz("replay", swarm_pcap, "-f", "udp port 4789", "--dport", "9", "--json", check=True)
    assert r.stdout == ""   # the flags and the expression must both hold


@pytest.mark.parametrize("text,said", [
    ("tcp prot 80", "syntax error"),
    ("net 10.0.0.0/33", "32"),
    ("ip protochain 6", "protochain is not supported"),
    ("tcp[9999999999]", ""),
])
def test_a_bad_expression_is_libpcaps_message_on_one_line_and_status_2(swarm_pcap, text, said):
    r = flowviz("replay", swarm_pcap, "-f", text)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"flowviz: filter {text!r}: ") and said in lines[0], r.stderr


def test_an_expression_is_checked_before_any_input_is_read():
    with pytest.raises(BadInput):
        Expression("port")


HARNESS = """
#include <string.h>
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define bpf_probe_read_kernel(dst, n, src) (memcpy((dst), (src), (n)), 0)
%s
int run(unsigned char *pkt, __u32 len, __u32 wirelen) { return fv_expr(pkt, len, wirelen); }
"""


def test_the_kernel_translation_decides_as_libpcap_does(mixed_capture, tmp_path):
    """The C the tracer runs (flowviz.pcapexpr.classic_to_c), compiled here as plain C with the kernel's
    read helper made a memcpy, against libpcap's own interpreter, frame by frame, for every expression;
    and with every frame cut short, where a load past the end must reject."""
    import ctypes
    frames = [rec.data for p in [sample(n) for n in SAMPLES] + [mixed_capture] for rec in read_capture(p)]
    for n, text in enumerate(EXPRESSIONS):
        expr = Expression(text)
        src, lib = tmp_path / f"e{n}.c", tmp_path / f"e{n}.so"
        src.write_text(HARNESS % expr.kernel_c())
        r = subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-Wno-unused-label",
                            "-Wno-unused-but-set-variable", "-Wno-unused-variable", "-o", str(lib), str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        run = ctypes.CDLL(str(lib)).run
        run.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32]
        for data in frames:
            for cut in (len(data), 40, 20):
                part = data[:cut]
                want = expr.matches_bytes(part, 1, len(data))
                assert bool(run(part, len(part), len(data))) == want, (text, cut, data.hex())


def test_a_link_type_the_expression_cannot_be_said_for_matches_nothing():
    """`vlan` means nothing on a BSD-loopback capture: libpcap refuses to compile it there, so those
    frames do not match, instead of the replay stopping half-way (found by scripts/fuzz)."""
    from flowviz.model import LINKTYPE_NULL
    expr = Expression("tcp or vlan")   # (vlan first would shift what follows by a tag, as in tcpdump)
    loop = b"\x02\x00\x00\x00" + tcp_frame(A, B, "127.0.0.1", "127.0.0.1", 1, 2)[14:]
    assert expr.matches_bytes(loop, LINKTYPE_NULL) is False
    assert expr.matches_bytes(tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 1, 2), 1) is True
