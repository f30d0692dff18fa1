"""``flowviz topo``: the snapshot as a tree per namespace, as JSON, or as the path to a port."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

from ..errors import BadInput, NeedRoot
from ..sanitize import safe
from .snapshot import Link, Snapshot, take


def run_topo(args) -> int:
    if os.geteuid() != 0:
        raise NeedRoot("flowviz topo needs root to look inside every namespace (try: sudo flowviz topo)")
    snap = take(rules=True)
    if args.path:
        return _path(snap, args)
    if args.json:
        json.dump(snap.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write("\n".join(tree_lines(snap)) + "\n")
    return 0


def _find_ns(snap: Snapshot, spec: str) -> int:
    if spec.startswith("inode:") and spec[6:].isdigit():
        ino = int(spec[6:])
        if ino in snap.namespaces:
            return ino
    for ino, v in snap.namespaces.items():
        i = v.info
        if spec in (i.name, os.path.basename(i.path)) or any(c.get("name") == spec for c in i.containers):
            return ino
    raise BadInput(f"--from {spec}: no network namespace of that name")


def _default_source(snap: Snapshot) -> int:
    for ino, v in snap.namespaces.items():
        if v.info.role == "client":   # the lab's client, when the lab is up
            return ino
    return next(ino for ino, v in snap.namespaces.items() if v.info.kind == "root")


def _default_target(snap: Snapshot, dport: int) -> Optional[str]:
    """An address of the namespace whose nat rules handle --dport (a published port)."""
    needle = f"--dport {dport} "
    for v in snap.namespaces.values():
        if any(needle in l + " " and "DNAT" in l for l in v.rules.get("nat", [])):
            for l in sorted(v.links.values(), key=lambda l: l.index):
                if l.kind != "loopback" and l.master is None and l.addresses and l.kind != "bridge":
                    return l.addresses[0].split("/")[0]
    return None


def _path(snap: Snapshot, args) -> int:
    from .path import trace
    if args.dport is None:
        raise BadInput("topo --path needs --dport")
    src = _find_ns(snap, args.src) if args.src else _default_source(snap)
    dst = args.to or _default_target(snap, args.dport)
    if dst is None:
        raise BadInput(f"no nat rule publishes port {args.dport}: say where to with --to ADDR")
    hops = trace(snap, src_ns=src, dst=dst, dport=args.dport)
    if args.json:
        json.dump({"from": snap.ns_name(src), "to": dst, "dport": args.dport,
                   "hops": [{"netns": h.netns, "ifname": h.ifname, "dir": h.dir, "place": h.place,
                             "notes": h.notes} for h in hops]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"path from {safe(snap.ns_name(src))} to {dst}:{args.dport} (tcp), worked out from links, routes, "
          f"rules and IPVS")
    width = max(len(safe(h.place)) for h in hops)
    for i, h in enumerate(hops):
        print(f"  {i:>2}  {safe(h.place):<{width}}  {h.dir}")
        for n in h.notes:
            print(f"  {'':>2}  {'':<{width}}      {safe(n)}")
    return 0


def _link_line(snap: Snapshot, l: Link) -> str:
    parts = [safe(l.name), l.kind, "up" if l.up else "down"]
    if l.mac:
        parts.append(l.mac)
    parts.append(f"mtu {l.mtu}")
    parts += l.addresses
    if l.master is not None:
        m = snap.link(l.ns, l.master)
        parts.append(f"master {safe(m.name) if m else l.master}")
    if l.peer is not None:
        parts.append(f"⇄ {safe(snap.place(l.peer))}")
    if l.parent is not None:
        parts.append(f"on {safe(snap.place(l.parent))}" + (f" ({l.macvlan_mode})" if l.macvlan_mode else ""))
    if l.vxlan is not None:
        vx = l.vxlan
        remotes = ", ".join(l.fdb_remotes) or vx.get("remote") or "learned"
        parts.append(f"vni {vx.get('vni')} udp/{vx.get('port')} {vx.get('local')} → {remotes} "
                     f"(socket in {safe(snap.ns_name(vx['underlay'])) if vx.get('underlay') else '?'}"
                     f"{', learning' if vx.get('learning') else ''})")
    return "  ".join(str(p) for p in parts)


def tree_lines(snap: Snapshot) -> list[str]:
    out = []
    docker_nets = {}
    if snap.docker:
        docker_nets = {n["bridge"]: n["name"] for n in snap.docker["networks"] if n.get("bridge")}
    order = sorted(snap.namespaces.items(), key=lambda kv: (kv[1].info.kind != "root", kv[1].info.name))
    for ino, v in order:
        i = v.info
        role = f"  [{i.role}{': ' + i.network if i.network else ''}]" if i.role else ""
        out.append(f"{safe(i.name)}{role}  ({safe(i.path)}, inode {ino})")
        if v.error:
            out.append(f"  (not readable: {v.error})")
            continue
        for c in i.containers:
            nets = ", ".join(c.get("networks") or [])
            out.append(f"  container {safe(c['name'])}  mode {c['mode']}" + (f"  networks {nets}" if nets else ""))
        for l in sorted(v.links.values(), key=lambda l: l.index):
            line = _link_line(snap, l)
            if l.kind == "bridge" and l.name in docker_nets:
                line += f"  (docker network {safe(docker_nets[l.name])})"
            out.append("  " + line)
        for r in v.routes:
            out.append(f"  route {r['dst']}" + (f" via {r['gateway']}" if r["gateway"] else "")
                       + (f" dev {safe(r['dev'])}" if r["dev"] else ""))
        for table in ("nat", "mangle"):
            for line in v.rules.get(table, []):
                if line.startswith("-A "):
                    out.append(f"  {table}: {safe(line)}")
        for s in v.ipvs:
            out.append(f"  ipvs: FWM {s.get('fwmark')} {s.get('scheduler')} → {', '.join(s.get('dests') or [])}")
        out.append("")
    return out
