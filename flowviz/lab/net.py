"""Building blocks of the lab: one :class:`Ns` per network namespace.

Every call is idempotent (running ``lab up`` twice is harmless) and works
*inside* a named namespace through a pyroute2 socket opened there: veth pairs
are created with their peer placed straight into the other namespace, VXLAN
devices are created in the node namespace (where their UDP socket lives, as
Docker does) and moved into the overlay namespace. Nothing is ever created in
the root namespace, so a crash halfway leaves nothing there to clean.
"""

from __future__ import annotations

import errno
import os
import subprocess
import zlib
from typing import Optional

from ..errors import LabError
from ..paths import RUN_NETNS as NETNS_DIR

PREFIX = "fvlab-"
BUILTIN_CHAINS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
KNOWN_TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "MARK", "LOG", "CONNMARK"}


def list_lab_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def netns_inode(name: str) -> Optional[int]:
    from ..netns import inode_of
    return inode_of(os.path.join(NETNS_DIR, name))


def run_in(ns: str, *argv: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    """Run a command inside a lab namespace (``ip netns exec``)."""
    r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=capture, text=True)
    if check and r.returncode != 0:
        said = (r.stderr or r.stdout or "").strip().splitlines()
        raise LabError(f"{ns}: {' '.join(argv)}: {said[0] if said else f'exit status {r.returncode}'}")
    return r


class Ns:
    """A lab namespace and a netlink socket inside it."""

    def __init__(self, name: str):
        if not name.startswith(PREFIX):
            raise LabError(f"refusing to touch namespace {name!r}: lab namespaces start with {PREFIX}")
        from ..netns import iproute_in
        if not netns_exists(name):
            r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
            if r.returncode != 0 and not netns_exists(name):
                raise LabError(f"ip netns add {name}: {r.stderr.strip()}")
        self.name = name
        self.ipr = iproute_in(name)
        self.up("lo")

    def close(self) -> None:
        self.ipr.close()

    # -- links ---------------------------------------------------------------

    def index(self, ifname: str) -> Optional[int]:
        found = self.ipr.link_lookup(ifname=ifname)
        return found[0] if found else None

    def _need(self, ifname: str) -> int:
        idx = self.index(ifname)
        if idx is None:
            raise LabError(f"{self.name}: no device {ifname}")
        return idx

    def up(self, ifname: str) -> None:
        self.ipr.link("set", index=self._need(ifname), state="up")

    def veth(self, ifname: str, peer: "Ns", peer_ifname: str, *, mac: Optional[str] = None,
             peer_mac: Optional[str] = None, mtu: Optional[int] = None) -> None:
        """A veth pair: ``ifname`` here, ``peer_ifname`` in ``peer``; both up."""
        if self.index(ifname) is None:
            peer_spec = {"ifname": peer_ifname, "net_ns_fd": peer.name}
            if peer_mac:
                peer_spec["address"] = peer_mac
            kw = {"address": mac} if mac else {}
            self.ipr.link("add", ifname=ifname, kind="veth", peer=peer_spec, **kw)
        if mtu:
            self.ipr.link("set", index=self._need(ifname), mtu=mtu)
            peer.ipr.link("set", index=peer._need(peer_ifname), mtu=mtu)
        self.up(ifname)
        peer.up(peer_ifname)

    def bridge(self, name: str, *, mac: Optional[str] = None, mtu: Optional[int] = None) -> None:
        if self.index(name) is None:
            kw = {"address": mac} if mac else {}
            self.ipr.link("add", ifname=name, kind="bridge", **kw)
        if mtu:
            self.ipr.link("set", index=self._need(name), mtu=mtu)
        self.up(name)

    def enslave(self, port: str, bridge: str) -> None:
        self.ipr.link("set", index=self._need(port), master=self._need(bridge))

    def vxlan(self, into: "Ns", name: str, *, vni: int, local: str, port: int = 4789, mtu: int = 1450,
              peers: tuple[str, ...] = ()) -> None:
        """A VXLAN device whose UDP socket lives here (the node) and which sits in ``into`` (the overlay)."""
        if into.index(name) is None:
            tmp = f"fvx{vni}"
            if self.index(tmp) is None:
                self.ipr.link("add", ifname=tmp, kind="vxlan", vxlan_id=vni, vxlan_port=port,
                              vxlan_local=local, vxlan_learning=1)
            self.ipr.link("set", index=self._need(tmp), net_ns_fd=into.name, ifname=name)
        idx = into._need(name)
        into.ipr.link("set", index=idx, mtu=mtu)
        for dst in peers:   # flood unknown and broadcast frames to each peer node
            try:
                into.ipr.fdb("append", ifindex=idx, lladdr="00:00:00:00:00:00", dst=dst)
            except Exception as e:  # NetlinkError EEXIST on a second `up`
                if getattr(e, "code", None) != errno.EEXIST:
                    raise
        into.up(name)

    def macvlan(self, parent: str, into: "Ns", name: str, *, mac: Optional[str] = None,
                mode: str = "bridge") -> None:
        """A macvlan of ``parent`` (here), moved into ``into`` as ``name``."""
        if into.index(name) is None:
            tmp = f"fvmv{zlib.crc32(into.name.encode()) % 100000}"
            if self.index(tmp) is None:
                kw = {"address": mac} if mac else {}
                self.ipr.link("add", ifname=tmp, kind="macvlan", link=self._need(parent), macvlan_mode=mode, **kw)
            self.ipr.link("set", index=self._need(tmp), net_ns_fd=into.name, ifname=name)
        into.up(name)

    # -- addresses, routes, sysctls, rules -------------------------------------------

    def addr(self, ifname: str, cidr: str) -> None:
        address, _, plen = cidr.partition("/")
        try:
            self.ipr.addr("add", index=self._need(ifname), address=address, prefixlen=int(plen))
        except Exception as e:
            if getattr(e, "code", None) != errno.EEXIST:
                raise

    def default_route(self, gateway: str) -> None:
        try:
            self.ipr.route("add", dst="0.0.0.0/0", gateway=gateway)
        except Exception as e:
            if getattr(e, "code", None) != errno.EEXIST:
                raise

    def sysctl(self, key: str, value: str) -> None:
        """Set a sysctl of this namespace (never the root's)."""
        path = "/proc/sys/" + key.replace(".", "/")
        run_in(self.name, "sh", "-c", f"echo {value} > {path}")

    def chain(self, table: str, chain: str) -> None:
        """Create a user chain unless it exists."""
        if run_in(self.name, "iptables", "-w", "-t", table, "-nL", chain, check=False).returncode != 0:
            run_in(self.name, "iptables", "-w", "-t", table, "-N", chain)

    def iptables(self, table: str, chain: str, *rule: str) -> None:
        """Append a rule unless it is already there, creating the user chains it names."""
        if chain not in BUILTIN_CHAINS:
            self.chain(table, chain)
        if "-j" in rule:
            target = rule[rule.index("-j") + 1]
            if target.isupper() and target not in KNOWN_TARGETS:
                self.chain(table, target)
        if run_in(self.name, "iptables", "-w", "-t", table, "-C", chain, *rule, check=False).returncode != 0:
            run_in(self.name, "iptables", "-w", "-t", table, "-A", chain, *rule)


def remove_netns(name: str) -> None:
    if name.startswith(PREFIX) and netns_exists(name):
        r = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
        if r.returncode != 0 and netns_exists(name):
            raise LabError(f"ip netns delete {name}: {r.stderr.strip()}")
