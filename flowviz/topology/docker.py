"""Docker's names for namespaces, bridges and networks, through the Docker SDK (optional).

When an engine answers (found as the Docker CLI finds it: ``DOCKER_HOST``, which
``flowviz --docker-host`` sets, else /var/run/docker.sock): container names and ids, each
container's network mode (host, none, container:X, bridge, user bridge,
overlay, macvlan), which namespace is whose (sandbox key or the process's
namespace), ``ingress_sbox``, the overlay namespaces ``1-<network id>``, the
swarm load-balancer sandboxes ``lb_<id>``, and the bridge device of each
bridge network (docker0, br-<id>, docker_gwbridge). Without the SDK or an
engine, topology works as before, without these names.
"""

from __future__ import annotations

import os

from ..netns import inode_of
from ..paths import DOCKER_NETNS

DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    """The engine's address: ``DOCKER_HOST`` as the Docker CLI reads it, else the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def client(timeout: float = 3.0):
    """A Docker client if the SDK is installed and an engine answers; otherwise None."""
    url = docker_host()
    if url.startswith("unix://") and not os.path.exists(url[len("unix://"):]):
        return None
    try:
        import docker
    except ImportError:
        return None
    try:
        # from_env: DOCKER_HOST, and DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for an engine over TCP
        c = docker.from_env(timeout=timeout)
        c.ping()
        return c
    except Exception:   # docker.errors.DockerException, requests errors: no engine to ask
        return None


def network_mode(attrs: dict, drivers: dict[str, str], names_by_id: dict[str, str]) -> str:
    """host | none | container:NAME | bridge | user bridge | overlay | macvlan | ipvlan | <driver>."""
    mode = attrs["HostConfig"].get("NetworkMode") or "default"
    if mode == "host":
        return "host"
    if mode == "none":
        return "none"
    if mode.startswith("container:"):
        target = mode.split(":", 1)[1]
        name = names_by_id.get(target) or next((n for i, n in names_by_id.items() if i.startswith(target)), target)
        return f"container:{name}"
    nets = list((attrs.get("NetworkSettings") or {}).get("Networks") or {})
    kinds = [drivers.get(n, "") for n in nets]
    for special in ("overlay", "macvlan", "ipvlan"):
        if special in kinds:
            return special
    if mode in ("default", "bridge") and (not nets or nets == ["bridge"]):
        return "bridge"
    return "user bridge" if "bridge" in kinds else (kinds[0] if kinds else mode)


def read(c) -> dict:
    """Containers and networks as Docker describes them."""
    networks = []
    drivers: dict[str, str] = {}
    for n in c.networks.list():
        a = n.attrs
        opts = a.get("Options") or {}
        bridge = None
        if a["Driver"] == "bridge":
            bridge = opts.get("com.docker.network.bridge.name") or f"br-{n.id[:12]}"
        vnis = opts.get("com.docker.network.driver.overlay.vxlanid_list")
        networks.append({
            "id": n.id, "name": n.name, "driver": a["Driver"], "scope": a.get("Scope"),
            "subnets": [cfg.get("Subnet") for cfg in ((a.get("IPAM") or {}).get("Config") or []) if cfg.get("Subnet")],
            "bridge": bridge, "vni": int(vnis.split(",")[0]) if vnis else None,
            "ingress": bool(a.get("Ingress")),
            "overlay_netns": f"1-{n.id[:10]}" if a["Driver"] == "overlay" else None,
            "parent": opts.get("parent"),
        })
        drivers[n.name] = a["Driver"]
    containers = []
    listed = c.containers.list()
    names_by_id = {ct.id: ct.name for ct in listed}
    for ct in listed:
        a = ct.attrs
        pid = (a.get("State") or {}).get("Pid") or 0
        ns = a.get("NetworkSettings") or {}
        sandbox = ns.get("SandboxKey") or None
        containers.append({
            "id": ct.id, "name": ct.name, "pid": pid,
            "netns_path": sandbox if sandbox else (f"/proc/{pid}/ns/net" if pid else None),
            "netns_inode": inode_of(f"/proc/{pid}/ns/net") if pid else (inode_of(sandbox) if sandbox else None),
            "mode": network_mode(a, drivers, names_by_id),
            "networks": {name: {"ip": v.get("IPAddress"), "mac": v.get("MacAddress"),
                                "gateway": v.get("Gateway")} for name, v in (ns.get("Networks") or {}).items()},
        })
    # where this engine keeps its namespaces (``<exec-root>/netns``: ingress_sbox and the overlays
    # are there, with no process in them); an engine started with its own --exec-root is not at
    # the default place
    netns_dirs = sorted({os.path.dirname(c["netns_path"]) for c in containers
                         if c["netns_path"] and not c["netns_path"].startswith("/proc/")})
    return {"containers": containers, "networks": networks, "netns_dirs": netns_dirs}


def apply(found: dict, info: dict) -> None:
    """Name namespaces as Docker would (in place): containers, ingress_sbox, overlays, lb sandboxes."""
    dirs = {DOCKER_NETNS, *info.get("netns_dirs", ())}
    by_path = {os.path.basename(ns.path): ns for ns in found.values() if os.path.dirname(ns.path) in dirs}
    nets_by_prefix = {n["id"][:10]: n for n in info["networks"] if n["driver"] == "overlay"}
    nets_by_lb = {n["id"][:9]: n for n in info["networks"] if n["driver"] == "overlay"}
    for base, ns in by_path.items():
        if base == "ingress_sbox":
            ns.name, ns.role, ns.network = "ingress_sbox", "ingress_sbox", "ingress"
        elif base.startswith("1-") and base[2:12] in nets_by_prefix:
            net = nets_by_prefix[base[2:12]]
            ns.name, ns.role, ns.network = base, "overlay", net["name"]
        elif base.startswith("lb_") and base[3:12] in nets_by_lb:
            net = nets_by_lb[base[3:12]]
            ns.name, ns.role, ns.network = f"lb-{net['name']}", "lb", net["name"]
    # containers: owners first, then those that share another's namespace (container:X) or the host's
    ordered = sorted(info["containers"], key=lambda c: c["mode"].startswith("container:") or c["mode"] == "host")
    for ct in ordered:
        ns = found.get(ct["netns_inode"]) if ct["netns_inode"] is not None else None
        if ns is None:
            continue
        entry = {"name": ct["name"], "id": ct["id"][:12], "mode": ct["mode"], "networks": sorted(ct["networks"])}
        if not any(e["name"] == ct["name"] for e in ns.containers):
            ns.containers.append(entry)
        if ns.kind != "root" and ct["mode"] != "host" and not ct["mode"].startswith("container:"):
            ns.name, ns.role = ct["name"], "container"
