"""A snapshot of the host's network: every namespace's links, peers, tunnels, routes and rules.

Read with pyroute2 from inside each namespace (entered with setns on this
thread, see flowviz.netns). Veth peers, VXLAN underlays and macvlan parents
are resolved across namespaces through each namespace's netnsid table, so a
container's ``eth0@if85`` is tied to the host's ``vethc0a30fb@if84``
exactly, not by guessing from index numbers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..model import ChangeKind, HopEvent
from ..netns import entered
from .namespaces import Namespace, discover

IFF_LOOPBACK = 0x8
IFF_UP = 0x1


@dataclass
class Link:
    ns: int                               #: namespace inode
    index: int
    name: str
    kind: str                             #: veth, bridge, vxlan, macvlan, loopback, tun, physical, ...
    mac: Optional[str] = None
    mtu: int = 0
    up: bool = False
    master: Optional[int] = None          #: bridge (or other master) ifindex, same namespace
    addresses: list[str] = field(default_factory=list)
    peer: Optional[tuple[int, int]] = None    #: veth: (namespace inode, ifindex) of the other end
    parent: Optional[tuple[int, int]] = None  #: macvlan/ipvlan/vlan: the lower device
    macvlan_mode: Optional[str] = None
    vxlan: Optional[dict] = None          #: vni, port, local, remote, learning, underlay (inode)
    fdb_remotes: list[str] = field(default_factory=list)   #: vxlan: where unknown/flooded frames go

    def key(self) -> tuple[int, int]:
        return (self.ns, self.index)


@dataclass
class NsView:
    info: Namespace
    links: dict[int, Link] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)   #: table → iptables-save lines
    ipvs: list[dict] = field(default_factory=list)
    error: Optional[str] = None           #: why it could not be read, if it could not


MACVLAN_MODES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}


def _attr(msg, name, default=None):
    v = msg.get_attr(name) if hasattr(msg, "get_attr") else None
    return default if v is None else v


def _read_links(ipr, inode: int, nsid_map: dict[int, int]) -> dict[int, Link]:
    links: dict[int, Link] = {}
    for m in ipr.get_links():
        index = m["index"]
        name = _attr(m, "IFLA_IFNAME", f"if{index}")
        info = _attr(m, "IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        if kind is None:
            kind = "loopback" if m["flags"] & IFF_LOOPBACK else "physical"
        link = Link(inode, index, name, kind, mac=_attr(m, "IFLA_ADDRESS"), mtu=_attr(m, "IFLA_MTU", 0),
                    up=bool(m["flags"] & IFF_UP), master=_attr(m, "IFLA_MASTER"))
        lower = _attr(m, "IFLA_LINK")
        nsid = _attr(m, "IFLA_LINK_NETNSID")
        other = nsid_map.get(nsid, None) if nsid is not None else inode
        if lower is not None and other is not None:
            if kind == "veth":
                link.peer = (other, lower)
            elif kind in ("macvlan", "macvtap", "ipvlan", "vlan"):
                link.parent = (other, lower)
        if info is not None:
            data = info.get_attr("IFLA_INFO_DATA")
            if kind == "vxlan" and data is not None:
                link.vxlan = {
                    "vni": data.get_attr("IFLA_VXLAN_ID"),
                    "port": data.get_attr("IFLA_VXLAN_PORT"),
                    "local": data.get_attr("IFLA_VXLAN_LOCAL"),
                    "remote": data.get_attr("IFLA_VXLAN_GROUP"),
                    "learning": bool(data.get_attr("IFLA_VXLAN_LEARNING")),
                    # the namespace whose UDP socket carries it (Docker moves vxlan0, the socket stays)
                    "underlay": nsid_map.get(nsid) if nsid is not None else inode,
                }
            elif kind in ("macvlan", "macvtap") and data is not None:
                mode = data.get_attr("IFLA_MACVLAN_MODE")   # pyroute2 may already name it
                link.macvlan_mode = mode if isinstance(mode, str) else MACVLAN_MODES.get(mode)
        links[index] = link
    for a in ipr.get_addr():
        l = links.get(a["index"])
        if l is not None:
            l.addresses.append(f"{_attr(a, 'IFA_ADDRESS')}/{a['prefixlen']}")
    for l in links.values():
        if l.kind == "vxlan":
            try:
                for n in ipr.fdb("dump", ifindex=l.index):
                    dst = _attr(n, "NDA_DST")
                    if dst and _attr(n, "NDA_LLADDR") == "00:00:00:00:00:00" and dst not in l.fdb_remotes:
                        l.fdb_remotes.append(dst)
            except Exception:   # an fdb dump some kernels refuse: the tunnel is still listed
                pass
    return links


def _read_routes(ipr, links: dict[int, Link]) -> list[dict]:
    out = []
    for r in ipr.get_routes(family=socket.AF_INET, table=254):
        dst = _attr(r, "RTA_DST")
        oif = _attr(r, "RTA_OIF")
        out.append({"dst": f"{dst}/{r['dst_len']}" if dst else "default",
                    "gateway": _attr(r, "RTA_GATEWAY"),
                    "dev": links[oif].name if oif in links else None,
                    "src": _attr(r, "RTA_PREFSRC")})
    return out


def _read_rules() -> dict[str, list[str]]:
    """nat and mangle rules of the current namespace, as iptables-save writes them."""
    if shutil.which("iptables-save") is None:
        return {}
    out = {}
    for table in ("nat", "mangle"):
        r = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True)
        lines = [l for l in r.stdout.splitlines() if l.startswith(("-A ", ":"))]
        if any(l.startswith("-A ") for l in lines):
            out[table] = lines
    return out


def _read_ipvs() -> list[dict]:
    """This namespace's IPVS services and their real servers (empty where there is no IPVS)."""
    if not os.path.exists("/proc/net/ip_vs"):
        return []
    try:
        from pyroute2 import IPVS, IPVSService
        with IPVS() as ipvs:
            services = []
            for s in ipvs.service("dump"):
                def get(name, s=s):
                    return s.get_nested("IPVS_CMD_ATTR_SERVICE", f"IPVS_SVC_ATTR_{name}")
                svc = {"fwmark": get("FWMARK"), "addr": get("ADDR"), "port": get("PORT"),
                       "protocol": get("PROTOCOL"), "scheduler": get("SCHED_NAME"), "dests": []}
                # the dest dump names its service by the key fields, as a service object
                key = {k: v for k, v in (("af", get("AF")), ("fwmark", svc["fwmark"]), ("addr", svc["addr"]),
                                         ("port", svc["port"]), ("protocol", svc["protocol"])) if v is not None}
                for d in ipvs.dest("dump", service=IPVSService(**key)):
                    svc["dests"].append(d.get_nested("IPVS_CMD_ATTR_DEST", "IPVS_DEST_ATTR_ADDR"))
                services.append(svc)
            return services
    except Exception:   # no IPVS netlink family in this namespace (pyroute2 raises several kinds)
        return []


def _nsid_map(ipr, namespaces: dict[int, Namespace]) -> dict[int, int]:
    """netnsid (as this namespace numbers the others) → namespace inode."""
    out = {}
    for ino, ns in namespaces.items():
        try:
            fd = os.open(ns.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            r = ipr.get_netnsid(fd=fd)
            nsid = r.get("nsid") if isinstance(r, dict) else None
            if nsid is not None and nsid >= 0:
                out[nsid] = ino
        except Exception:   # a namespace gone meanwhile
            pass
        finally:
            os.close(fd)
    return out


class Snapshot:
    """Everything topology knows at one moment."""

    def __init__(self, namespaces: dict[int, NsView]):
        self.namespaces = namespaces
        self.docker = None   # filled by topology.docker when an engine answers

    # -- lookups -------------------------------------------------------------------------

    def link(self, ns: Optional[int], index: Optional[int]) -> Optional[Link]:
        v = self.namespaces.get(ns) if ns is not None else None
        return v.links.get(index) if v is not None and index is not None else None

    def ns_name(self, ns: int) -> str:
        v = self.namespaces.get(ns)
        return v.info.name if v is not None else f"inode:{ns}"

    def place(self, key: Optional[tuple[int, int]]) -> Optional[str]:
        if key is None:
            return None
        l = self.link(*key)
        return f"{self.ns_name(key[0])}/{l.name}" if l is not None else f"{self.ns_name(key[0])}/if{key[1]}"

    # -- what the correlator asks ----------------------------------------------------------

    def crossing(self, a: HopEvent, b: HopEvent):
        la, lb = self.link(a.netns_id, a.ifindex), self.link(b.netns_id, b.ifindex)
        if la is None or lb is None:
            return None
        if la.peer == lb.key() or lb.peer == la.key():
            return ChangeKind.VETH, None
        if la.ns == lb.ns:
            if la.master is not None and la.master == lb.master:
                return ChangeKind.BRIDGE, self._name(la.ns, la.master)
            if la.kind == "bridge" and lb.master == la.index:
                return ChangeKind.BRIDGE, la.name
            if lb.kind == "bridge" and la.master == lb.index:
                return ChangeKind.BRIDGE, lb.name
        for x, y in ((la, lb), (lb, la)):
            if x.kind in ("macvlan", "ipvlan") and x.parent == y.key():
                return ChangeKind.BRIDGE, f"{y.name} ({x.kind})"
        if la.kind in ("macvlan", "ipvlan") and la.parent is not None and la.parent == lb.parent:
            return ChangeKind.BRIDGE, f"{self._name(*la.parent)} ({la.kind})"   # siblings on one parent
        return None

    def handed_to(self, received: HopEvent, frame) -> Optional[HopEvent]:
        lower = self.link(received.netns_id, received.ifindex)
        if lower is None:
            return None
        eth = frame.ether
        dst_ip = frame.dst
        for v in self.namespaces.values():
            for kid in v.links.values():
                if kid.parent != lower.key() or kid.kind not in ("macvlan", "ipvlan"):
                    continue
                if (kid.kind == "macvlan" and eth is not None and kid.mac == eth.dst) or \
                        (kid.kind == "ipvlan" and dst_ip is not None and dst_ip in {a.split("/")[0] for a in kid.addresses}):
                    return received._replace(netns=v.info.name, netns_id=kid.ns, ifindex=kid.index, ifname=kid.name,
                                             hook=f"{kid.kind} (rx handler)", mode=v.info.mode(),
                                             ts_ns=received.ts_ns + 1)
        return None

    def describe(self, ev: HopEvent) -> str:
        """``kind= master= peer=`` notes for a recording's interface description."""
        l = self.link(ev.netns_id, ev.ifindex)
        if l is None:
            return ""
        parts = [f"kind={l.kind}"]
        if l.master is not None:
            parts.append(f"master={self._name(l.ns, l.master)}")
        if l.peer is not None:
            parts.append(f"peer={self.place(l.peer)}")
        if l.parent is not None:
            parts.append(f"parent={self.place(l.parent)}")
        return " ".join(p.replace(" ", "_") for p in parts)

    def _name(self, ns: int, index: int) -> str:
        l = self.link(ns, index)
        return l.name if l is not None else f"if{index}"

    def to_json(self) -> dict:
        out = []
        for ino, v in sorted(self.namespaces.items(), key=lambda kv: (kv[1].info.kind != "root", kv[1].info.name)):
            links = []
            for l in sorted(v.links.values(), key=lambda l: l.index):
                d = asdict(l)
                d.pop("ns")
                d = {"ifname": d.pop("name"), "ifindex": d.pop("index"), **d}   # as events name them
                d["master"] = self._name(ino, l.master) if l.master is not None else None
                d["peer"] = self._ref(l.peer)
                d["parent"] = self._ref(l.parent)
                if l.vxlan is not None:
                    d["vxlan"] = dict(l.vxlan, underlay=self.ns_name(l.vxlan["underlay"])
                                      if l.vxlan.get("underlay") is not None else None)
                links.append(d)
            info = v.info
            out.append({"netns": info.name, "inode": ino, "path": info.path, "kind": info.kind, "node": info.node,
                        "role": info.role, "network": info.network, "containers": info.containers,
                        "links": links, "routes": v.routes, "rules": v.rules, "ipvs": v.ipvs, "error": v.error})
        result = {"namespaces": out}
        if self.docker is not None:
            result["docker"] = self.docker
        return result

    def _ref(self, key: Optional[tuple[int, int]]) -> Optional[dict]:
        if key is None:
            return None
        l = self.link(*key)
        return {"netns": self.ns_name(key[0]), "ifindex": key[1], "ifname": l.name if l else None}


def take(*, rules: bool = True, namespaces: Optional[dict[int, Namespace]] = None,
         docker: Optional[dict] = None) -> Snapshot:
    """Read every namespace now (those given, or all that discover() finds)."""
    from pyroute2 import IPRoute
    if namespaces is None:
        namespaces, docker = discover()
    found = namespaces
    views: dict[int, NsView] = {}
    for ino, info in found.items():
        view = NsView(info)
        try:
            with entered(info.path):
                ipr = IPRoute()
                if rules:
                    view.rules = _read_rules()
                    view.ipvs = _read_ipvs()
            with ipr:
                view.links = _read_links(ipr, ino, _nsid_map(ipr, found))
                view.routes = _read_routes(ipr, view.links)
        except OSError as e:
            view.error = e.strerror or str(e)
        views[ino] = view
    snap = Snapshot(views)
    snap.docker = docker
    return snap
