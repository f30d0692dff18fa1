"""Bytes → header stack (:class:`~flowviz.model.Frame`).

This runs once per sighting, so it is plain ``struct`` work: no scapy, no
exceptions for control flow. A short or malformed header ends decoding where
it is and is noted in ``Frame.error``; :func:`decode` never raises.

Understood: Ethernet, 802.1Q/802.1ad, Linux cooked v1 (SLL) and v2 (SLL2),
raw IP, BSD loopback (NULL), IPv4, IPv6 (extension headers skipped), TCP, UDP,
ICMP, ICMPv6, ARP, and VXLAN on UDP 4789 and 8472 with its inner Ethernet
frame, decoded recursively.
"""

from __future__ import annotations

import struct
from socket import AF_INET6, inet_ntop
from typing import Final, Optional

from .gcuntrack import record
from .model import (
    ARP, ICMP, IP, L4, IPv4, IPv6, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW, SLL,
    TCP, UDP, VXLAN, Dot1Q, Ether, Frame,
)

# (Final, and each Struct as its bound unpack_from: compiled (flowviz/native.py), a module-level name
# not declared Final is looked up in the module's dict at every use, and a Struct's method at every call.)
VXLAN_PORTS: Final = frozenset({4789, 8472})   # IANA port, and Linux's historical default
MAX_DEPTH: Final = 4                           # VXLAN in VXLAN in ... stops here

ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD
ETH_P_8021Q: Final = 0x8100
ETH_P_8021AD: Final = 0x88A8
ETH_P_QINQ: Final = 0x9100

_eth: Final = struct.Struct("!6s6sH").unpack_from
_vlan: Final = struct.Struct("!HH").unpack_from
_sll: Final = struct.Struct("!HHH8sH").unpack_from
_sll2: Final = struct.Struct("!HHIHBB8s").unpack_from
_ip4: Final = struct.Struct("!BBHHHBBH4s4s").unpack_from
_ip6: Final = struct.Struct("!IHBB16s16s").unpack_from
_tcp: Final = struct.Struct("!HHIIHH").unpack_from
_udp: Final = struct.Struct("!HHH").unpack_from
_icmp: Final = struct.Struct("!BBHHH").unpack_from
_arp: Final = struct.Struct("!HHBBH").unpack_from
_vxlan: Final = struct.Struct("!B3sI").unpack_from
_u32_le: Final = struct.Struct("<I").unpack_from
_u32_be: Final = struct.Struct("!I").unpack_from
_record: Final = record

_IPV6_EXT: Final = frozenset({0, 43, 44, 60, 135, 139, 140})  # hop-by-hop, routing, fragment, dest opts, ...


def _frame(layers: tuple, ip: Optional[IP] = None, l4: Optional[L4] = None, arp: Optional[ARP] = None,
           vxlan: Optional[VXLAN] = None, inner: Optional[Frame] = None, payload: bytes = b"",
           error: Optional[str] = None) -> Frame:
    """``Frame(...)``, built without the NamedTuple's own constructor (Python code: compiled, a third
    of its time). The fields in Frame's order; the layers below are built the same way, all their
    fields given in order (tests/unit/test_decode.py checks the orders)."""
    return _record(Frame, layers, ip, l4, arp, vxlan, inner, payload, error)


# Addresses as text, remembered by their bytes (one table per kind): a capture holds few, each in
# many packets.
_MACS: Final[dict] = {}
_IP4S: Final[dict] = {}
_TEXTS_MAX: Final = 8192   # a table is forgotten all at once past this many


def _text(texts: dict, b: bytes, make) -> str:
    t = texts.get(b)
    if t is None:
        if len(texts) >= _TEXTS_MAX:
            texts.clear()
        t = texts[b] = make(b)
    return t


def _mac_text(b: bytes) -> str:
    return b.hex(":")


def _ip4_text(b: bytes) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def _mac(b: bytes) -> str:
    return _text(_MACS, b, _mac_text)


def _ip4s(b: bytes) -> str:
    return _text(_IP4S, b, _ip4_text)


def decode(data: bytes, linktype: int = LINKTYPE_ETHERNET) -> Frame:
    """Decode ``data`` starting with a ``linktype`` header; never raises."""
    return _decode(data, linktype, 0)


def _decode(data: bytes, linktype: int, depth: int) -> Frame:
    layers: list = []
    n = len(data)
    off = 0
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return _frame((), error="short ethernet header")
        dst, src, etype = _eth(data, 0)
        layers.append(_record(Ether, _mac(src), _mac(dst), etype))
        off = 14
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return _frame((), error="short SLL2 header")
        etype, _, ifindex, hatype, pkttype, halen, addr = _sll2(data, 0)
        layers.append(SLL(pkttype, hatype, _mac(addr[:min(halen, 8)]), etype, ifindex))
        off = 20
    elif linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return _frame((), error="short SLL header")
        pkttype, hatype, halen, addr, etype = _sll(data, 0)
        layers.append(SLL(pkttype, hatype, _mac(addr[:min(halen, 8)]), etype, None))
        off = 16
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if n < 1:
            return _frame((), error="empty packet")
        version = data[0] >> 4
        etype = ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else -1
        if etype < 0:
            return _frame((), error=f"IP version {version}")
    elif linktype == LINKTYPE_NULL:
        if n < 4:
            return _frame((), error="short loopback header")
        family = _u32_le(data, 0)[0]
        if family > 0xFFFF:  # written in the other byte order
            family = _u32_be(data, 0)[0]
        off = 4
        etype = ETH_P_IP if family == 2 else ETH_P_IPV6 if family in (10, 24, 28, 30) else -1
        if etype < 0:
            return _frame((), error=f"loopback family {family}")
    else:
        return _frame((), error=f"link type {linktype}")

    # 802.1Q / 802.1ad tags, possibly stacked
    while etype in (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ):
        if n < off + 4:
            return _frame(tuple(layers), error="short 802.1Q tag")
        tci, etype = _vlan(data, off)
        layers.append(Dot1Q(tci & 0x0FFF, tci >> 13, etype))
        off += 4

    if etype == ETH_P_IP:
        return _ipv4(data, off, layers, depth)
    if etype == ETH_P_IPV6:
        return _ipv6(data, off, layers, depth)
    if etype == ETH_P_ARP:
        return _arp_frame(data, off, layers)
    return _frame(tuple(layers), payload=data[off:])


def _ipv4(data: bytes, off: int, layers: list, depth: int) -> Frame:
    n = len(data)
    if n < off + 20:
        return _frame(tuple(layers), error="short IPv4 header")
    vihl, tos, total, ident, frag, ttl, proto, _, src, dst = _ip4(data, off)
    ihl = (vihl & 0x0F) * 4
    ip = _record(IPv4, _ip4s(src), _ip4s(dst), proto, ttl, ident, tos, total, frag)
    layers.append(ip)
    if vihl >> 4 != 4 or ihl < 20:
        return _frame(tuple(layers), ip=ip, error="bad IPv4 header length")
    # Ethernet pads short frames: the IP total length says where the packet ends.
    end = off + total if total >= ihl and off + total <= n else n
    dend = off + total if total >= ihl else n
    off += ihl
    if off > end:
        return _frame(tuple(layers), ip=ip, error="short IPv4 options")
    if frag & 0x1FFF:  # a later fragment: no transport header in it
        return _frame(tuple(layers), ip=ip, payload=data[off:end])
    return _l4(data, off, end, dend, proto, layers, ip, depth)


def _ipv6(data: bytes, off: int, layers: list, depth: int) -> Frame:
    n = len(data)
    if n < off + 40:
        return _frame(tuple(layers), error="short IPv6 header")
    vtf, plen, nh, hlim, src, dst = _ip6(data, off)
    end = off + 40 + plen if off + 40 + plen <= n else n
    dend = off + 40 + plen
    off += 40
    fragment_rest = False
    # extension headers: skip to the upper layer
    while nh in _IPV6_EXT:
        if off + 8 > end:
            ip = _record(IPv6, inet_ntop(AF_INET6, src), inet_ntop(AF_INET6, dst), nh, hlim, vtf & 0xFFFFF, plen)
            layers.append(ip)
            return _frame(tuple(layers), ip=ip, error="short IPv6 extension header")
        if nh == 44:
            fragment_rest = bool(struct.unpack_from("!H", data, off + 2)[0] & 0xFFF8)
            hdr_len = 8
        else:
            hdr_len = (data[off + 1] + 1) * 8
        nh = data[off]
        off += hdr_len
    ip = _record(IPv6, inet_ntop(AF_INET6, src), inet_ntop(AF_INET6, dst), nh, hlim, vtf & 0xFFFFF, plen)
    layers.append(ip)
    if vtf >> 28 != 6:
        return _frame(tuple(layers), ip=ip, error="bad IPv6 version")
    if off > end:
        return _frame(tuple(layers), ip=ip, error="short IPv6 extension header")
    if fragment_rest:
        return _frame(tuple(layers), ip=ip, payload=data[off:end])
    return _l4(data, off, end, dend, nh, layers, ip, depth)


def _l4(data: bytes, off: int, end: int, dend: int, proto: int, layers: list, ip, depth: int) -> Frame:
    """Transport header at ``off``; the packet ends at ``end`` here and at ``dend`` per its IP length."""
    if proto == 6:
        if end < off + 20:
            return _frame(tuple(layers), ip=ip, error="short TCP header")
        sport, dport, seq, ack, offflags, win = _tcp(data, off)
        doff = (offflags >> 12) * 4
        tcp = _record(TCP, sport, dport, seq, ack, offflags & 0x01FF, win, max(dend - off - doff, 0))
        layers.append(tcp)
        if doff < 20 or off + doff > end:
            return _frame(tuple(layers), ip=ip, l4=tcp, error="bad TCP header length")
        return _frame(tuple(layers), ip=ip, l4=tcp, payload=data[off + doff:end])
    if proto == 17:
        if end < off + 8:
            return _frame(tuple(layers), ip=ip, error="short UDP header")
        sport, dport, length = _udp(data, off)
        udp = _record(UDP, sport, dport, length)
        layers.append(udp)
        off += 8
        if dport in VXLAN_PORTS and end >= off + 8 and depth < MAX_DEPTH:
            flags, _, vni_word = _vxlan(data, off)
            if flags & 0x08:  # the I flag: a valid VNI follows
                vx = _record(VXLAN, vni_word >> 8, flags)
                layers.append(vx)
                carried = data[off + 8:end]   # kept as the payload: filters look at the inner frame's bytes
                inner = _decode(carried, LINKTYPE_ETHERNET, depth + 1)
                return _frame(tuple(layers), ip=ip, l4=udp, vxlan=vx, inner=inner, payload=carried,
                             error=inner.error)
        return _frame(tuple(layers), ip=ip, l4=udp, payload=data[off:end])
    if proto == 1 or proto == 58:
        if end < off + 4:
            return _frame(tuple(layers), ip=ip, error="short ICMP header")
        if end >= off + 8:
            itype, code, _, ident, seq = _icmp(data, off)
        else:
            itype, code = data[off], data[off + 1]
            ident = seq = 0
        echo = (itype in (0, 8)) if proto == 1 else (itype in (128, 129))
        icmp = _record(ICMP, itype, code, ident if echo else 0, seq if echo else 0, proto == 58)
        layers.append(icmp)
        # (not data[off + 8:end] when the header is cut short: compiled, a slice that ends before it
        # begins is a SystemError, not b"")
        return _frame(tuple(layers), ip=ip, l4=icmp, payload=data[off + 8:end] if end > off + 8 else b"")
    return _frame(tuple(layers), ip=ip, payload=data[off:end])


def _arp_frame(data: bytes, off: int, layers: list) -> Frame:
    n = len(data)
    if n < off + 8:
        return _frame(tuple(layers), error="short ARP header")
    htype, ptype, hlen, plen, op = _arp(data, off)
    off += 8
    if hlen != 6 or plen != 4 or n < off + 20:
        return _frame(tuple(layers), error="ARP for other than Ethernet/IPv4")
    arp = ARP(op, _mac(data[off:off + 6]), _ip4s(data[off + 6:off + 10]),
              _mac(data[off + 10:off + 16]), _ip4s(data[off + 16:off + 20]))
    layers.append(arp)
    return _frame(tuple(layers), arp=arp)


def sll_direction(data: bytes, linktype: int):
    """Direction a cooked capture records (``"tx"`` for outgoing, else ``"rx"``) and the SLL2 ifindex."""
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 20:
        return ("tx" if data[10] == 4 else "rx"), _u32_be(data, 4)[0]
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 16:
        return ("tx" if data[1] == 4 and data[0] == 0 else "rx"), None
    return None, None
