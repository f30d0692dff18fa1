"""The decoder: every layer, VXLAN recursion, and never raising on bad bytes."""

from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st
from scapy.packet import Raw
from scapy.layers.inet import ICMP as SICMP, IP, TCP as STCP, UDP as SUDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6 as SIPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP as SARP, CookedLinux, CookedLinuxV2, Dot1Q as SDot1Q, Ether
from scapy.layers.vxlan import VXLAN as SVXLAN

from flowviz.decode import decode, sll_direction
from flowviz.model import (
    ARP, ICMP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW,
    SLL, TCP, UDP, VXLAN, Dot1Q, Ether as FEther, IPv4, IPv6, KNOWN_LINKTYPES,
)


def test_ethernet_ipv4_tcp():
    b = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
              IP(src="10.0.0.1", dst="10.0.0.2", ttl=61, id=4242) /
              STCP(sport=1234, dport=80, flags="SA", seq=7, ack=9, window=512) / b"hello")
    f = decode(b)
    assert f.error is None
    eth, ip, tcp = f.layers
    assert eth == FEther("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)
    assert (ip.src, ip.dst, ip.ttl, ip.id, ip.proto) == ("10.0.0.1", "10.0.0.2", 61, 4242, 6)
    assert tcp == TCP(1234, 80, 7, 9, 0x12, 512, 5)
    assert f.payload == b"hello"
    assert (f.proto, f.src, f.sport, f.dst, f.dport) == ("tcp", "10.0.0.1", 1234, "10.0.0.2", 80)


def test_ethernet_padding_is_not_payload():
    b = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / STCP(flags="A"))
    padded = b + b"\0" * (60 - len(b))
    assert decode(padded).payload == b""


def test_vlan_stack_and_udp():
    b = bytes(Ether() / SDot1Q(vlan=100, prio=3) / SDot1Q(vlan=7) / IP(src="1.1.1.1", dst="2.2.2.2") /
              SUDP(sport=53, dport=5353) / b"x")
    f = decode(b)
    assert [type(x).__name__ for x in f.layers] == ["Ether", "Dot1Q", "Dot1Q", "IPv4", "UDP"]
    assert f.layers[1] == Dot1Q(100, 3, 0x8100)
    assert f.l4 == UDP(53, 5353, 9)


def test_ipv6_with_extension_header_and_icmpv6():
    b = bytes(Ether() / SIPv6(src="fd00::1", dst="fd00::2", hlim=9) / IPv6ExtHdrHopByHop() /
              ICMPv6EchoRequest(id=5, seq=6))
    f = decode(b)
    assert isinstance(f.ip, IPv6) and f.ip.src == "fd00::1" and f.ip.ttl == 9 and f.ip.proto == 58
    assert f.l4 == ICMP(128, 0, 5, 6, True)
    assert f.proto == "icmp"


def test_icmp_echo_keeps_id_and_seq():
    f = decode(bytes(Ether() / IP() / SICMP(type=8, id=77, seq=3)))
    assert f.l4 == ICMP(8, 0, 77, 3, False)
    f = decode(bytes(Ether() / IP() / SICMP(type=3, code=1)))
    assert f.l4 == ICMP(3, 1, 0, 0, False)


def test_arp():
    f = decode(bytes(Ether() / SARP(op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.9")))
    assert f.arp == ARP(1, "02:00:00:00:00:01", "10.0.0.1", "00:00:00:00:00:00", "10.0.0.9")
    assert (f.proto, f.src, f.dst) == ("arp", "10.0.0.1", "10.0.0.9")


def _vxlan(port: int, vni: int = 4096) -> bytes:
    inner = Ether() / IP(src="10.255.0.3", dst="10.255.0.33") / STCP(sport=40001, dport=20229)
    return bytes(Ether() / IP(src="192.168.21.192", dst="192.168.21.193") / SUDP(sport=5000, dport=port) /
                 SVXLAN(vni=vni, flags=0x08) / inner)


def test_vxlan_both_ports_recursively():
    for port in (4789, 8472):
        f = decode(_vxlan(port))
        assert f.vxlan == VXLAN(4096, 0x08)
        assert f.inner is not None and f.inner.dport == 20229 and f.inner.src == "10.255.0.3"
        assert f.innermost is f.inner


def test_vxlan_in_vxlan():
    inner = _vxlan(4789, vni=10)
    b = bytes(Ether() / IP(src="1.0.0.1", dst="1.0.0.2") / SUDP(dport=4789) / SVXLAN(vni=20, flags=0x08) /
              Raw(inner))
    f = decode(b)
    assert f.vxlan.vni == 20 and f.inner.vxlan.vni == 10 and f.innermost.dport == 20229


def test_udp_4789_without_the_vni_flag_is_plain_udp():
    b = bytes(Ether() / IP() / SUDP(dport=4789) / (b"\x00" * 16))
    f = decode(b)
    assert f.vxlan is None and f.inner is None and f.l4.dport == 4789


def test_cooked_v1_and_v2():
    base = IP(src="10.0.0.1", dst="10.0.0.2") / STCP(sport=1, dport=2)
    v1 = bytes(CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=b"\x02\x00\x00\x00\x00\x01\x00\x00",
                           proto=0x0800) / base)
    f = decode(v1, LINKTYPE_LINUX_SLL)
    assert isinstance(f.layers[0], SLL) and f.layers[0].pkttype == 4 and f.dport == 2
    assert sll_direction(v1, LINKTYPE_LINUX_SLL) == ("tx", None)
    v2 = bytes(CookedLinuxV2(proto=0x0800, ifindex=7, pkttype=0, lladdrtype=1, lladdrlen=6) / base)
    f = decode(v2, LINKTYPE_LINUX_SLL2)
    assert f.layers[0].ifindex == 7 and f.dport == 2
    assert sll_direction(v2, LINKTYPE_LINUX_SLL2) == ("rx", 7)


def test_raw_ip_and_bsd_loopback():
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / SUDP(sport=9, dport=10))
    assert decode(raw, LINKTYPE_RAW).dport == 10
    assert decode(struct.pack("<I", 2) + raw, LINKTYPE_NULL).dport == 10
    assert decode(struct.pack(">I", 2) + raw, LINKTYPE_NULL).dport == 10


def test_short_headers_decode_as_far_as_they_go():
    b = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / STCP(sport=1, dport=2))
    f = decode(b[:14 + 20 + 10])          # TCP cut in half
    assert isinstance(f.ip, IPv4) and f.l4 is None and "TCP" in f.error
    f = decode(b[:10])
    assert f.layers == () and f.error
    f = decode(_vxlan(4789)[:14 + 20 + 8 + 8 + 20])   # inner IP cut short
    assert f.vxlan is not None and f.inner is not None and f.error == "short IPv4 header"


def test_an_icmp_header_of_four_to_seven_bytes_has_its_type_and_no_payload():
    """The IP length can end an ICMP header after its type, code and checksum (fuzzing found it: the
    compiled decoder sliced the payload from past where the packet ends, a SystemError there)."""
    full = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / SICMP(type=8, id=7, seq=9))
    for cut in range(4, 8):
        b = bytearray(full)
        struct.pack_into("!H", b, 14 + 2, 20 + cut)   # the IP total length: `cut` bytes of ICMP
        f = decode(bytes(b))
        assert f.l4 is not None and (f.l4.type, f.l4.code) == (8, 0) and f.payload == b"" and f.error is None, cut


def test_unknown_linktype_is_an_error_not_an_exception():
    assert decode(b"\x00" * 40, 9999).error == "link type 9999"


@settings(max_examples=400)
@given(data=st.binary(max_size=200), linktype=st.sampled_from(sorted(KNOWN_LINKTYPES)))
def test_never_raises_on_random_bytes(data, linktype):
    decode(data, linktype)


@settings(max_examples=200)
@given(cut=st.integers(min_value=0, max_value=200), flip=st.integers(min_value=0, max_value=199),
       value=st.integers(min_value=0, max_value=255))
def test_never_raises_on_damaged_vxlan(cut, flip, value):
    b = bytearray(_vxlan(4789))
    if flip < len(b):
        b[flip] = value
    f = decode(bytes(b[:cut]))
    assert f.layers or f.error


def test_the_field_orders_the_decoder_builds_in():
    """decode.py builds Frames and layers through tuple.__new__, every field in order (without the
    NamedTuple constructors, which are Python code): a reordered field fails here, not silently."""
    from flowviz.model import ICMP, TCP, UDP, Ether, Frame, IPv4, IPv6
    assert Frame._fields == ("layers", "ip", "l4", "arp", "vxlan", "inner", "payload", "error")
    assert Ether._fields == ("src", "dst", "type")
    assert IPv4._fields == ("src", "dst", "proto", "ttl", "id", "tos", "length", "frag")
    assert IPv6._fields == ("src", "dst", "proto", "ttl", "flow", "length")
    assert TCP._fields == ("sport", "dport", "seq", "ack", "flags", "window", "seglen")
    assert UDP._fields == ("sport", "dport", "length")
    assert ICMP._fields == ("type", "code", "id", "seq", "v6")
