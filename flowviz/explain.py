"""Plain-language explanations of a hop: what this device or namespace is, and why the packet
changed here. Written for a class being shown the reference path (DESIGN.md, and the notes in
../shared/seed/docker-networking-notes.txt it comes from); used by the TUI's explain panel.
"""

from __future__ import annotations

from typing import Callable, Optional

from .annotations import note_text
from .model import Change, ChangeKind, Hop, Journey
from .reference import OVERLAY_MTU, SBOX_GW_IP, SBOX_INGRESS_IP, VXLAN_OVERHEAD, VXLAN_PORT
from .render.changes import after_text as _a, before_text as _b


MODES = {
    "host": "Host mode (--net=host): the container gets no namespace of its own. It uses the host's "
            "interfaces, addresses and ports directly, so there is no veth, no bridge and no NAT on the way.",
    "bridge": "Bridge mode, Docker's default: the container has its own namespace with an eth0 that is one end "
              "of a veth pair; the other end sits in the host, plugged into the docker0 bridge, and docker0's "
              "address is the container's default gateway.",
    "user bridge": "A user-defined bridge network: the same veth + bridge arrangement as docker0, on a bridge "
                   "of its own (br-<network id>), with name resolution between its containers.",
    "none": "None mode (--net=none): the container has a namespace with only a loopback device. Nothing "
            "leaves it unless someone adds an interface by hand.",
    "container": "Container mode (--net=container:X): this container joined another's namespace. They share "
                 "interfaces, addresses and ports and talk to each other over lo.",
    "macvlan": "Macvlan: the container's interface is a child of a host device with its own MAC address, so it "
               "appears on the physical network as a machine of its own; the parent's receive handler hands it "
               "the frames addressed to that MAC.",
    "overlay": "Overlay: the container is on a network that spans several Docker hosts. Its frames go through a "
               "bridge in an overlay namespace and, for containers on other hosts, are wrapped in VXLAN.",
}


def _mode_text(mode: Optional[str]) -> Optional[str]:
    if not mode:
        return None
    if mode.startswith("host"):
        return MODES["host"]
    if "container:" in mode:
        return MODES["container"] + f" Here: {mode}."
    for key in ("user bridge", "bridge", "none", "macvlan", "overlay"):
        if mode.startswith(key):
            return MODES[key]
    return None


def _place_text(hop: Hop) -> list[str]:
    ev = hop.event
    name, ns = ev.ifname, (ev.netns or "")
    out = []
    if name == "docker0":
        out.append("docker0 is the bridge Docker makes for its default network. Every bridge-mode container "
                   "has a veth plugged into it, and the host routes to 172.17.0.0/16 through it.")
    elif name == "docker_gwbridge":
        out.append("docker_gwbridge connects swarm containers and ingress_sbox to the host. Published ports "
                   "enter a swarm node's containers through it: the host's nat rules send them to ingress_sbox "
                   f"({SBOX_GW_IP}).")
    elif name.startswith("br-"):
        out.append(f"{name} is the bridge of a user-defined Docker bridge network.")
    elif name == "br0":
        out.append("br0 is the bridge inside an overlay network's namespace: the containers' veths and the "
                   "vxlan0 tunnel device are its ports, so one network spans every node.")
    elif name.startswith("vxlan"):
        out.append("vxlan0 is the tunnel end of the overlay network. Frames sent into it are wrapped in "
                   f"UDP (port {VXLAN_PORT}) to the node that has the destination; that adds {VXLAN_OVERHEAD} "
                   f"bytes, which is why overlay devices use an MTU of {OVERLAY_MTU} instead of 1500.")
    elif name.startswith("veth"):
        out.append(f"{name} is the host end of a veth pair: a two-ended pipe where whatever is sent into one end "
                   "comes out of the other, in another namespace.")
    elif name == "lo":
        out.append("lo is the loopback device: a packet sent to a local address comes straight back in.")
    if "ingress_sbox" in ns:
        out.append("ingress_sbox is the namespace Docker swarm uses to load-balance published ports: it has one "
                   f"leg on docker_gwbridge (eth1, {SBOX_GW_IP}) and one on the ingress overlay (eth0, "
                   f"{SBOX_INGRESS_IP}).")
    elif ns.split(":")[-1].startswith("1-"):
        out.append(f"{ns} is the namespace Docker creates for an overlay network (named 1- and the start of the "
                   "network id); it holds br0 and vxlan0.")
    elif ev.dir == "tx" and ev.ifname == "eth0" and hop.frame.vxlan is not None:
        out.append("This is the node's own network card: the packet leaves the host here, inside VXLAN.")
    return out


CHANGES: dict[ChangeKind, Callable[[Change], str]] = {
    ChangeKind.VETH: lambda c: (
        f"It crossed a veth pair (or a wire): sent by {c.before}, received by {c.after}, bytes unchanged, now in "
        "another namespace."),
    ChangeKind.BRIDGE: lambda c: (
        f"The bridge{' ' + c.via if c.via else ''} forwarded the frame by its destination MAC, without touching "
        "the IP packet, like a switch would."),
    ChangeKind.ROUTE: lambda c: (
        "This namespace routed it: it was not for a local address here, so the kernel looked up a route, "
        f"decremented the TTL (ttl {c.before} → {c.after}) and gave it new MAC addresses for "
        "the next link."),
    ChangeKind.DNAT: lambda c: (
        f"DNAT rewrote the destination from {_b(c)} to {_a(c)}. A published port works this way: a nat rule "
        "(or IPVS) sends what arrives for the port to the container that serves it; conntrack remembers, so the "
        "reply is rewritten back."),
    ChangeKind.SNAT: lambda c: (
        f"SNAT rewrote the source from {_b(c)} to {_a(c)}, so that the reply comes back the same way. In "
        f"ingress_sbox the packet takes ingress_sbox's own overlay address {SBOX_INGRESS_IP}: the task answers to "
        "ingress_sbox, which undoes both rewrites."),
    ChangeKind.IPVS: lambda c: _ipvs_text(c),
    ChangeKind.MARK: lambda c: (
        f"The mangle table set the firewall mark to {c.after:#x} (= {c.after}). In ingress_sbox the mark "
        f"names the published port's IPVS service: 'FWM {c.after}' picks a task's address round-robin "
        "and rewrites the destination to it."),
    ChangeKind.ENCAP: lambda c: (
        f"VXLAN encapsulation (VNI {c.vni}): the whole Ethernet frame became the payload of a UDP packet between "
        f"the two nodes ({_a(c)}). The {VXLAN_OVERHEAD} extra bytes are why the overlay MTU is {OVERLAY_MTU}."),
    ChangeKind.DECAP: lambda c: (
        f"VXLAN decapsulation (VNI {c.vni}): the receiving node's vxlan device took the outer headers off and "
        "the original frame continues into the overlay bridge."),
    ChangeKind.DELIVER: lambda c: (
        f"Delivered: {_a(c)} is a local address here, so the packet went up the stack to the listening "
        "socket. Its journey ends."),
    ChangeKind.DROP: lambda c: f"Dropped: the kernel freed it with reason {c.reason}.",
}


def _ipvs_text(c: Change) -> str:
    n = c.note
    if n is None:
        return f"IPVS rewrote {_b(c)} to {_a(c)}."
    if n.reply:
        return (f"IPVS rewrote the reply's source from {_b(c)} back to {_a(c)}: the real server "
                f"{n.real} answered, and the client must see the address it asked. This is why the reply "
                "comes back through ingress_sbox.")
    svc = n.service()
    how = ("The scheduler picked it now: this packet opened a new IPVS connection."
           if n.new else "The connection already existed, so IPVS sent it to the same real server as before.")
    fwm = (f" {svc} is the service the mangle table's mark {n.fwmark:#x} (= {n.fwmark}) selects: Docker marks "
           "a published port's packets in ingress_sbox so that one IPVS service balances them over the "
           "service's tasks." if n.fwmark else "")
    return (f"IPVS ({svc}, scheduler {n.scheduler or '?'}) chose the real server {n.real} and rewrote the "
            f"destination from {_b(c) or svc} to {_a(c)} (masquerade).{fwm} {how}")


def _note_text(c: Change) -> Optional[str]:
    """What the kernel hook saw, for changes other than IPVS (whose sentence already says it)."""
    if c.note is None or c.kind is ChangeKind.IPVS:
        return None
    return f"The kernel says: {note_text(c.note)}."


def _change_text(hop: Hop, journey: Journey) -> list[str]:
    out = []
    for c in hop.changes:
        out.append(CHANGES[c.kind](c))
        said = _note_text(c)
        if said:
            out.append(said)
    if hop.seq == 0:
        role = "a reply" if journey.reply_to is not None else "the first sighting of this packet"
        out.append(f"This is {role}: {journey.summary()}.")
    return out


def explain(hop: Hop, journey: Journey) -> list[str]:
    """A few sentences about this hop, most specific first."""
    parts = _change_text(hop, journey) + _place_text(hop)
    mode = _mode_text(hop.event.mode)
    if mode:
        parts.append(mode)
    return parts or [f"{hop.place}: the packet was seen here ({hop.event.dir or 'direction unknown'})."]
