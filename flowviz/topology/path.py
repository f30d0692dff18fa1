"""``flowviz topo --path``: the way a packet would go, worked out before any packet is sent.

From a starting namespace towards an address and port: routes come from the
kernel itself (a route lookup made inside each namespace, with the packet's
mark); NAT and marks from the namespace's nat/mangle rules (PREROUTING on
arrival, POSTROUTING on departure); IPVS from its fwmark services (or the
lab's DNAT emulation, which the rules already describe); bridges forward to
the port behind which the next hop lives (a VXLAN port when no local port
has it); VXLAN wraps the packet for the remote in its forwarding table and
the namespace holding its socket, and the peer's VXLAN device with the same
VNI unwraps it. The hops listed are the sightings a live follow reports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from ..errors import BadInput
from ..netns import entered
from . import rules as iprules
from .snapshot import Link, NsView, Snapshot

MAX_HOPS = 64


@dataclass
class PathHop:
    netns: str
    ifname: str
    dir: str
    notes: list[str] = field(default_factory=list)

    @property
    def place(self) -> str:
        return f"{self.netns}/{self.ifname}"


def _addrs(link: Link) -> set[str]:
    return {a.split("/")[0] for a in link.addresses}


@dataclass
class _Walk:
    """Where the packet is while :class:`Tracer` walks it: leaving ``sending``, or arriving on
    ``receiving``, in namespace ``ns``, towards ``nexthop``; packets waiting inside tunnels on
    ``stack``; notes for the next tx hop."""

    p: "iprules.Packet"
    ns: int
    nexthop: str
    sending: Optional[Link] = None
    receiving: Optional[Link] = None
    postrouted: bool = False
    announced: bool = False      #: the rx hop on ``receiving`` is written already (a tunnel's far end)
    stack: list = field(default_factory=list)
    notes: list = field(default_factory=list)


class Tracer:
    def __init__(self, snap: Snapshot):
        self.snap = snap
        self._rules: dict[int, dict] = {}
        self.hops: list[PathHop] = []

    # -- facts about namespaces ----------------------------------------------------------

    def view(self, ns: int) -> NsView:
        return self.snap.namespaces[ns]

    def local(self, ns: int, addr: str) -> bool:
        if addr.startswith("127."):
            return True
        return any(addr in _addrs(l) for l in self.view(ns).links.values())

    def chains(self, ns: int, table: str) -> dict:
        per_ns = self._rules.setdefault(ns, {})
        if table not in per_ns:
            per_ns[table] = iprules.parse(self.view(ns).rules.get(table, []))
        return per_ns[table]

    def route(self, ns: int, dst: str, mark: int) -> tuple[Link, Optional[str], Optional[str]]:
        """(out link, gateway, preferred source) — the kernel's own answer, asked inside ``ns``."""
        from pyroute2 import IPRoute
        with entered(self.view(ns).info.path):
            ipr = IPRoute()
        try:
            kw = {"mark": mark} if mark else {}
            found = ipr.route("get", dst=dst, **kw)
        except Exception as e:   # NetlinkError: no route
            raise BadInput(f"{self.snap.ns_name(ns)}: no route to {dst} ({e})") from None
        finally:
            ipr.close()
        r = found[0]
        link = self.view(ns).links.get(r.get_attr("RTA_OIF"))
        if link is None:
            raise BadInput(f"{self.snap.ns_name(ns)}: route to {dst} uses an unknown device")
        return link, r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_PREFSRC")

    def egress_port(self, bridge: Link, nexthop: str, came_in: Optional[Link]) -> Optional[Link]:
        """The bridge port behind which ``nexthop`` lives (or its VXLAN port)."""
        ports = [l for l in self.view(bridge.ns).links.values()
                 if l.master == bridge.index and (came_in is None or l.index != came_in.index)]
        for p in ports:
            far = self.snap.link(*p.peer) if p.peer else None
            if far is not None and nexthop in self._reachable_addrs(far):
                return p
        for p in ports:
            if p.kind == "macvlan" or (p.parent is not None):
                continue
            if p.kind == "vxlan":
                return p
        return None

    def _reachable_addrs(self, far: Link) -> set[str]:
        """Addresses at the far end of a port: its own, its macvlan children's, or those behind it if it is
        a bridge port itself."""
        addrs = _addrs(far)
        for v in self.snap.namespaces.values():
            for kid in v.links.values():
                if kid.parent == far.key():
                    addrs |= _addrs(kid)
        if far.master is not None:
            br = self.snap.link(far.ns, far.master)
            for l in self.view(far.ns).links.values():
                if l.master == far.master and l.index != far.index and l.peer:
                    other = self.snap.link(*l.peer)
                    if other is not None:
                        addrs |= _addrs(other)
            if br is not None:
                addrs |= _addrs(br)
        return addrs

    # -- the walk ----------------------------------------------------------------------------

    def hop(self, ns: int, link: Link, d: str, *notes: str) -> PathHop:
        h = PathHop(self.snap.ns_name(ns), link.name, d, [n for n in notes if n])
        self.hops.append(h)
        if len(self.hops) > MAX_HOPS:
            raise BadInput("the path loops (more than 64 hops)")
        return h

    def _effects(self, effects, table: str, chain: str) -> list[str]:
        return [f"{e.kind} {e.before}→{e.after} ({table} {chain}: {e.rule.text[3:]})" for e in effects]

    def run(self, src_ns: int, dst: str, dport: int, proto: str, sport: int) -> list[PathHop]:
        w = self._start(src_ns, dst, dport, proto, sport)
        while not (self._send(w) if w.sending is not None else self._receive(w)):
            pass
        return self.hops

    def _start(self, src_ns: int, dst: str, dport: int, proto: str, sport: int) -> "_Walk":
        """The packet as the source namespace sends it: nat OUTPUT may redirect it (Docker does
        for published ports)."""
        p = iprules.Packet(proto, "0.0.0.0", dst, sport, dport)
        out, gw, src = self.route(src_ns, dst, 0)
        p.src = src or next(iter(_addrs(out)), "0.0.0.0")
        _, eff = iprules.run_chain(self.chains(src_ns, "nat"), "OUTPUT", p, lambda a: self.local(src_ns, a))
        notes = self._effects(eff, "nat", "OUTPUT")
        if eff:
            out, gw, _ = self.route(src_ns, p.dst, p.mark)
        return _Walk(p, src_ns, gw or p.dst, sending=out, notes=notes)

    def _send(self, w: "_Walk") -> bool:
        """The packet leaves w.sending (POSTROUTING first, once); True when the path ends here."""
        if not w.postrouted:
            w.p.out_dev = w.sending.name
            masq = next(iter(_addrs(w.sending)), None)
            _, eff = iprules.run_chain(self.chains(w.ns, "nat"), "POSTROUTING", w.p,
                                       lambda a, ns=w.ns: self.local(ns, a), masquerade_src=masq)
            w.notes += self._effects(eff, "nat", "POSTROUTING")
            w.postrouted = True
        self.hop(w.ns, w.sending, "tx", *w.notes)
        w.notes = []
        link, w.sending = w.sending, None
        if link.kind == "bridge":
            w.sending = self.egress_port(link, w.nexthop, None)
            if w.sending is None:
                raise BadInput(f"{self.snap.ns_name(w.ns)}/{link.name}: no port leads to {w.nexthop}")
        elif link.kind == "vxlan":
            self._encap(w, link)
        elif link.peer is not None:
            far = self.snap.link(*link.peer)
            if far is None:
                raise BadInput(f"{self.snap.ns_name(w.ns)}/{link.name}: its peer is not visible")
            w.ns, w.receiving = far.ns, far
        elif link.parent is not None and self.snap.link(*link.parent) is not None:
            parent = self.snap.link(*link.parent)   # macvlan/ipvlan: leaves through its parent
            w.ns, w.sending, w.postrouted = parent.ns, parent, True
        else:
            self.hops[-1].notes.append(f"leaves through {link.name} ({link.kind})")
            return True
        return False

    def _encap(self, w: "_Walk", link: Link) -> None:
        """Into the VXLAN device: the packet waits on the stack, a UDP packet to the remote goes on."""
        vx = link.vxlan or {}
        remote = link.fdb_remotes[0] if link.fdb_remotes else vx.get("remote")
        if not remote or vx.get("underlay") is None:
            raise BadInput(f"{self.snap.ns_name(w.ns)}/{link.name}: no VXLAN remote known")
        w.stack.append((w.p, w.nexthop, vx["vni"]))
        under = vx["underlay"]
        out, gw, src = self.route(under, remote, 0)
        w.p = iprules.Packet("udp", vx.get("local") or src, remote, None, vx.get("port") or 4789)
        w.notes = [f"encap vni {vx['vni']} {w.p.src} → {remote} udp/{w.p.dport}"]
        w.ns, w.nexthop, w.sending, w.postrouted = under, gw or remote, out, False

    def _receive(self, w: "_Walk") -> bool:
        """The packet arrives on w.receiving: bridged on, handed to a macvlan child, or up into
        the namespace's stack (:meth:`_up`); True when the path ends here."""
        link, w.receiving = w.receiving, None
        rx = self.hops[-1] if w.announced else self.hop(w.ns, link, "rx")
        w.announced = False
        if link.master is not None:
            bridge = self.snap.link(w.ns, link.master)
            if bridge is not None and bridge.kind == "bridge":
                if w.nexthop not in _addrs(bridge):
                    port = self.egress_port(bridge, w.nexthop, link)
                    if port is None:
                        raise BadInput(f"{self.snap.ns_name(w.ns)}/{bridge.name}: no port leads to {w.nexthop}")
                    w.sending, w.postrouted = port, True   # bridged: no netfilter on the way
                    return False
                rx = self.hop(w.ns, bridge, "rx")   # for the bridge's own address: up into the stack
                link = bridge
        child = next((k for v in self.snap.namespaces.values() for k in v.links.values()
                      if k.parent == link.key() and w.p.dst in _addrs(k)), None)
        if child is not None:   # a macvlan child that owns the address takes the frame
            w.ns, w.receiving = child.ns, child
            return False
        return self._up(w, link, rx)

    def _up(self, w: "_Walk", link: Link, rx: PathHop) -> bool:
        """PREROUTING (mangle, nat, IPVS), then routed on, delivered, or unwrapped by a tunnel."""
        p, ns = w.p, w.ns
        p.in_dev, p.out_dev = link.name, None
        is_local = lambda a, ns=ns: self.local(ns, a)   # noqa: E731
        _, eff = iprules.run_chain(self.chains(ns, "mangle"), "PREROUTING", p, is_local)
        rx.notes += self._effects(eff, "mangle", "PREROUTING")
        _, eff = iprules.run_chain(self.chains(ns, "nat"), "PREROUTING", p, is_local)
        rx.notes += self._effects(eff, "nat", "PREROUTING")
        for svc in self.view(ns).ipvs:
            if svc.get("fwmark") and svc["fwmark"] == p.mark and svc.get("dests"):
                before = f"{p.dst}:{p.dport}"
                p.dst, p.ipvs = svc["dests"][0], True
                rx.notes.append(f"ipvs FWM {p.mark}: {before}→{p.dst}:{p.dport}")
        if not self.local(ns, p.dst):
            out, gw, _ = self.route(ns, p.dst, p.mark)
            w.sending, w.nexthop, w.postrouted = out, gw or p.dst, False
            return False
        tunnel = self._vxlan_for(ns, w.stack[-1][2], p.dport) if w.stack and p.proto == "udp" else None
        if tunnel is None:
            rx.notes.append(f"deliver to {p.dst}:{p.dport}")
            return True
        w.p, w.nexthop, vni = w.stack.pop()   # the tunnel's far end unwraps it
        w.ns, w.receiving, w.announced = tunnel.ns, tunnel, True
        self.hop(w.ns, tunnel, "rx", f"decap vni {vni}")
        return False

    def _vxlan_for(self, ns: int, vni: int, port: Optional[int]) -> Optional[Link]:
        for v in self.snap.namespaces.values():
            for l in v.links.values():
                if l.kind == "vxlan" and l.vxlan and l.vxlan.get("vni") == vni and l.vxlan.get("underlay") == ns \
                        and (port is None or l.vxlan.get("port") == port):
                    return l
        return None


def trace(snap: Snapshot, *, src_ns: int, dst: str, dport: int, proto: str = "tcp",
          sport: int = 40000) -> list[PathHop]:
    try:
        ipaddress.IPv4Address(dst)
    except ValueError:
        raise BadInput(f"--to {dst!r}: an IPv4 address") from None
    return Tracer(snap).run(src_ns, dst, dport, proto, sport)
