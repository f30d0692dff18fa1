"""The one model every source produces and every output consumes.

Sources (live bcc, pcap replay) yield :class:`HopEvent` — one sighting of one
packet on one device — and nothing else. :mod:`flowviz.decode` turns an event's
bytes into a :class:`Frame` (the header stack), :mod:`flowviz.correlate`
groups the sightings of one packet into a :class:`Journey` and names each
:class:`Transition` between consecutive hops with :class:`Change` items.

The per-packet and per-hop types (:class:`HopEvent`, the header layers,
:class:`Hop`, :class:`Transition`, :class:`Change`) are ``NamedTuple``:
immutable and without a per-instance dict, and measured 3.5-5x faster to
build than frozen slotted dataclasses, which matters because several are
built for every sighting. :class:`Journey`, one per packet, is a frozen
slotted dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, NamedTuple, Optional, Union

# (Module constants are Final: compiled (flowviz/native.py), any other module-level name is looked up
# in the module's dict at every use.)

# Link-layer header types (https://www.tcpdump.org/linktypes.html) that the
# decoder understands; the data of a HopEvent starts with this header.
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
KNOWN_LINKTYPES: Final = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL,
     LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2}
)

# Directions of a sighting. Plain strings so they cost nothing on the hot path
# and serialise as themselves.
RX: Final = "rx"      #: the device received it
TX: Final = "tx"      #: the device is sending it
DROP: Final = "drop"  #: the kernel freed it as a drop (skb:kfree_skb), with a reason
FREE: Final = "free"  #: end of life without a drop (skb:consume_skb); not a hop
LOST: Final = "lost"  #: not a sighting: the kernel could not hand some over (ring buffer full) just now

#: what can see a packet: the live tracer's tracepoints, or a capture; and netif_rx, which recordings
#: made before flowviz stopped attaching it name. A recording's hook= that names anything else is not
#: believed (``UNKNOWN_HOOK``).
HOOK_NAMES: Final = frozenset({"netif_receive_skb", "net_dev_start_xmit", "netif_rx", "kfree_skb",
                               "consume_skb", "capture"})
UNKNOWN_HOOK: Final = "unknown"


class HopEvent(NamedTuple):
    """One sighting of one packet at one device.

    Sources fill what they know and leave the rest ``None``: a capture knows
    no skb address, a live event knows no namespace *name* until topology
    names its inode.
    """

    ts_ns: int                      #: time of the sighting, ns since the epoch (live: since boot)
    ifname: str                     #: device name as the source saw it ("eth0", "if3")
    dir: Optional[str]              #: RX, TX, DROP, FREE; None when the capture does not say
    data: bytes                     #: first bytes of the packet, from its link-layer header on
    linktype: int = LINKTYPE_ETHERNET  #: how ``data`` starts (a LINKTYPE_* value)
    length: int = 0                 #: length on the wire; 0 means len(data)
    netns: Optional[str] = None     #: namespace name ("host", "ingress_sbox", a container name)
    netns_id: Optional[int] = None  #: namespace inode (live sources, recordings)
    ifindex: Optional[int] = None   #: device index inside its namespace
    hook: str = "capture"           #: what saw it: a tracepoint name, or "capture"
    skb: Optional[int] = None       #: kernel sk_buff address (live only): identity while alive
    mark: Optional[int] = None      #: skb->mark (fwmark), when known
    drop_reason: Optional[str] = None  #: for DROP: the kernel's skb_drop_reason name
    cpu: Optional[int] = None       #: CPU that saw it (live)
    comment: Optional[str] = None   #: free text carried along (pcapng comment)
    mode: Optional[str] = None      #: how the namespace is networked: "bridge", "host", "container:web", ...
    notes: tuple = ()               #: typed annotations from optional kernel hooks (flowviz.annotations)
    gap: bool = False               #: a sighting of this packet before this one was lost (ring buffer full)

    @property
    def place(self) -> str:
        """Where the sighting happened: ``"netns/ifname"``, or the bare device name."""
        return f"{self.netns}/{self.ifname}" if self.netns else self.ifname

    @property
    def wire_len(self) -> int:
        return self.length or len(self.data)


# --- the decoded header stack ---------------------------------------------

class Ether(NamedTuple):
    src: str
    dst: str
    type: int


class Dot1Q(NamedTuple):
    vid: int
    pcp: int
    type: int


class SLL(NamedTuple):
    """Linux cooked capture header, v1 (ifindex None) or v2."""

    pkttype: int   #: 0 host, 1 broadcast, 2 multicast, 3 otherhost, 4 outgoing
    hatype: int
    addr: str
    type: int
    ifindex: Optional[int]


class IPv4(NamedTuple):
    src: str
    dst: str
    proto: int
    ttl: int
    id: int
    tos: int
    length: int
    frag: int      #: flags + fragment offset, as on the wire


class IPv6(NamedTuple):
    src: str
    dst: str
    proto: int     #: upper-layer protocol after extension headers
    ttl: int       #: hop limit, named ttl so both IP versions read alike
    flow: int
    length: int    #: payload length


class TCP(NamedTuple):
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    seglen: int = 0  #: payload bytes the IP length announces (even when the capture is cut short)


class UDP(NamedTuple):
    sport: int
    dport: int
    length: int


class ICMP(NamedTuple):
    type: int
    code: int
    id: int        #: echo identifier (0 for other types)
    seq: int       #: echo sequence (0 for other types)
    v6: bool


class ARP(NamedTuple):
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str


class VXLAN(NamedTuple):
    vni: int
    flags: int


Layer = Union[Ether, Dot1Q, SLL, IPv4, IPv6, TCP, UDP, ICMP, ARP, VXLAN]
IP = Union[IPv4, IPv6]
L4 = Union[TCP, UDP, ICMP]


class Frame(NamedTuple):
    """A decoded header stack, outermost first.

    ``inner`` is the frame a VXLAN header carries, decoded the same way.
    ``error`` says where decoding stopped early (short or malformed header);
    everything before that point is still here.
    """

    layers: tuple
    ip: Optional[IP] = None
    l4: Optional[L4] = None
    arp: Optional[ARP] = None
    vxlan: Optional[VXLAN] = None
    inner: Optional["Frame"] = None
    payload: bytes = b""           #: what follows the last header (under VXLAN: the inner frame's bytes)
    error: Optional[str] = None

    @property
    def innermost(self) -> "Frame":
        f = self
        while f.inner is not None:
            f = f.inner
        return f

    @property
    def proto(self) -> Optional[str]:
        """"tcp", "udp", "icmp", "arp", another IP protocol number as text, or None."""
        if self.l4 is not None:
            return _L4_NAMES[type(self.l4)]
        if self.ip is not None:
            return IP_PROTO_NAMES.get(self.ip.proto, str(self.ip.proto))
        if self.arp is not None:
            return "arp"
        return None

    @property
    def sport(self) -> Optional[int]:
        l4 = self.l4
        return l4.sport if l4 is not None and type(l4) is not ICMP else None  # type: ignore[union-attr]

    @property
    def dport(self) -> Optional[int]:
        l4 = self.l4
        return l4.dport if l4 is not None and type(l4) is not ICMP else None  # type: ignore[union-attr]

    @property
    def src(self) -> Optional[str]:
        if self.ip is not None:
            return self.ip.src
        return self.arp.spa if self.arp is not None else None

    @property
    def dst(self) -> Optional[str]:
        if self.ip is not None:
            return self.ip.dst
        return self.arp.tpa if self.arp is not None else None

    @property
    def ether(self) -> Optional[Ether]:
        for layer in self.layers:
            if type(layer) is Ether:
                return layer
        return None

    def tuple_text(self) -> str:
        """``proto src:sport → dst:dport`` (or the ARP question) for people."""
        return flow_text(self.proto, self.src, self.sport, self.dst, self.dport)


_L4_NAMES: Final = {TCP: "tcp", UDP: "udp", ICMP: "icmp"}
IP_PROTO_NAMES: Final = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp",
                         58: "icmp", 132: "sctp"}


TCP_FLAG_NAMES: Final = ((0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x20, "URG"))


def tcp_flags_text(flags: int) -> str:
    return ",".join(name for bit, name in TCP_FLAG_NAMES if flags & bit)


def endpoint(addr: Optional[str], port: Optional[int]) -> str:
    if addr is None:
        return "?"
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def flow_text(proto, src, sport, dst, dport) -> str:
    if proto is None:
        return "-"
    return f"{proto} {endpoint(src, sport)} → {endpoint(dst, dport)}"


def namedtuple_json(t) -> dict:
    """A NamedTuple (a typed annotation) as JSON-ready dicts, nested ones included."""
    return {k: namedtuple_json(v) if hasattr(v, "_asdict") else v for k, v in t._asdict().items()}


# --- journeys ---------------------------------------------------------------

class ChangeKind(str, Enum):
    """What happened to the packet between two sightings."""

    VETH = "veth"        #: crossed a veth pair (or a wire) into another namespace
    BRIDGE = "bridge"    #: a bridge forwarded it from one port to another (or up to itself)
    ROUTE = "route"      #: routed: TTL − 1, MACs rewritten
    DNAT = "dnat"        #: destination address/port rewritten
    IPVS = "ipvs"        #: IPVS sent it to a real server (or rewrote its reply): a DNAT that IPVS decided
    SNAT = "snat"        #: source address/port rewritten
    MARK = "mark"        #: skb->mark (fwmark) set or changed
    ENCAP = "encap"      #: wrapped in VXLAN (VNI, outer tuple)
    DECAP = "decap"      #: VXLAN header removed
    DELIVER = "deliver"  #: handed to a local socket; the journey ends here
    DROP = "drop"        #: dropped by the kernel; the journey ends here

    def __str__(self) -> str:  # "dnat", not "ChangeKind.DNAT", in f-strings
        return self.value

    # the string's own hash, in C: Enum's is Python code hashing the member's name, which made every
    # Change hashed (render/jsonl.py keeps each one's JSON) cost a call into the interpreter; and a
    # member equal to its value ("dnat") now hashes as it does
    __hash__ = str.__hash__


class Endpoint(NamedTuple):
    """An address and port a NAT rewrote (port None for protocols without ports)."""

    addr: Optional[str]
    port: Optional[int]


class Flow(NamedTuple):
    """A packet's tuple at one header level (the inner or the outer packet of a tunnel)."""

    proto: Optional[str]
    src: Optional[str]
    sport: Optional[int]
    dst: Optional[str]
    dport: Optional[int]


class Change(NamedTuple):
    """One named change: ``kind`` from ``before`` to ``after``, as values (render/changes.py formats them).

    By kind: VETH, BRIDGE, DROP: places (``"netns/device"``); ROUTE: TTLs; MARK: marks;
    DNAT, SNAT, IPVS, DELIVER: :class:`Endpoint`; ENCAP, DECAP: :class:`Flow` (the outer one
    with ``vni``)."""

    kind: ChangeKind
    before: Any = None
    after: Any = None
    vni: Optional[int] = None      #: for ENCAP / DECAP
    reason: Optional[str] = None   #: for DROP
    via: Optional[str] = None      #: for BRIDGE: the bridge (or macvlan parent) that forwarded it
    note: Optional[tuple] = None   #: what a kernel hook saw decide it (flowviz.annotations), when one did


class Transition(NamedTuple):
    """What changed from the previous hop of a journey to this one."""

    changes: tuple[Change, ...] = ()

    def kinds(self) -> tuple[ChangeKind, ...]:
        return tuple(c.kind for c in self.changes)

    def has(self, kind: ChangeKind) -> bool:
        return any(c.kind is kind for c in self.changes)


class Hop(NamedTuple):
    """One sighting in the order of its journey, with what changed to get here."""

    seq: int
    event: HopEvent
    frame: Frame
    transition: Transition
    dt_ns: int = 0   #: time since the journey's first hop

    @property
    def place(self) -> str:
        return self.event.place

    @property
    def changes(self) -> tuple[Change, ...]:
        return self.transition.changes


ORIG: Final = "orig"    #: same direction as the connection's first packet
REPLY: Final = "reply"  #: the other direction


@dataclass(frozen=True, slots=True)
class Journey:
    """One packet's ordered hops through the host(s)."""

    id: int
    hops: tuple[Hop, ...]
    conn: int = 0                   #: connection this packet belongs to
    direction: str = ORIG           #: ORIG or REPLY within the connection
    reply_to: Optional[int] = None  #: id of the request journey this one answers
    evicted: bool = False           #: finished early to bound memory: later sightings of it start anew
    incomplete: bool = False        #: sightings of it were (or may have been) lost: the path has holes

    @property
    def path(self) -> list[str]:
        return [h.place for h in self.hops]

    @property
    def changes(self) -> list[Change]:
        return [c for h in self.hops for c in h.changes]

    @property
    def start_ns(self) -> int:
        return self.hops[0].event.ts_ns if self.hops else 0

    @property
    def first(self) -> Hop:
        return self.hops[0]

    def summary(self) -> str:
        """The packet as its sender wrote it: innermost tuple at the first hop."""
        return self.hops[0].frame.innermost.tuple_text() if self.hops else "-"

    def kinds(self) -> set[ChangeKind]:
        return {c.kind for h in self.hops for c in h.changes}
