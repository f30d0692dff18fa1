"""Every network namespace on the host, by inode, with the best name for it.

Sources, deduplicated by inode (the same namespace is often reachable through
several of them): the root namespace ("host"), named ones (``ip netns``,
/run/netns), Docker's (/var/run/docker/netns: ``ingress_sbox``, overlay
``1-<id>``, container sandboxes), and every process's /proc/<pid>/ns/net.
Names from the lab's recorded roles and from Docker win over file names.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from ..netns import inode_of

from ..paths import DOCKER_NETNS, LAB_STATE_FILE, RUN_NETNS


@dataclass
class Namespace:
    inode: int
    path: str                        #: a path that enters it (for setns)
    name: str                        #: what people call it: "host", "ingress_sbox", a container name
    kind: str = "process"            #: root | named | docker | process
    node: Optional[str] = None       #: lab: which simulated host
    role: Optional[str] = None       #: host | ingress_sbox | overlay | container | client | underlay
    network: Optional[str] = None    #: for overlay namespaces: the Docker network
    containers: list[dict] = field(default_factory=list)   #: [{"name", "id", "mode", "networks"}]
    pids: list[int] = field(default_factory=list)

    def mode(self) -> Optional[str]:
        """How this namespace is networked, as Docker would say it ("bridge", "host: hostweb",
        "bridge, shared with sidecar (container:web)", "ingress_sbox", "overlay ingress")."""
        if self.kind == "root":
            hosted = [c["name"] for c in self.containers if c.get("mode") == "host"]
            return f"host: {', '.join(hosted)}" if hosted else None
        if self.containers:
            owner = next((c for c in self.containers if not c["mode"].startswith("container:")
                          and c["mode"] != "host"), self.containers[0])
            text = owner["mode"]
            sharers = [f"{c['name']} ({c['mode']})" for c in self.containers if c is not owner]
            return f"{text}, shared with {', '.join(sharers)}" if sharers else text
        if self.role == "overlay":
            return f"overlay {self.network}" if self.network else "overlay"
        if self.role in ("ingress_sbox", "lb"):
            return self.role if not self.network or self.role == "ingress_sbox" else f"lb {self.network}"
        return None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class Discovery(NamedTuple):
    namespaces: dict[int, Namespace]   #: by inode
    docker: Optional[dict]             #: what Docker said (topology.docker.read), if an engine answered


def _root_path() -> str:
    """A path to the initial network namespace: PID 1's, else kthreadd's (a kernel thread lives in
    init_net; PID 1 may be unreadable in a sandbox), else our own."""
    if inode_of("/proc/1/ns/net") is not None:
        return "/proc/1/ns/net"
    if _comm(2) == "kthreadd" and inode_of("/proc/2/ns/net") is not None:
        return "/proc/2/ns/net"
    return "/proc/self/ns/net"


def discover(*, with_processes: bool = True, with_docker: bool = True) -> Discovery:
    """All namespaces this process can see, by inode, named as well as we can."""
    found: dict[int, Namespace] = {}
    root_path = _root_path()
    root = inode_of(root_path)
    if root is not None:
        found[root] = Namespace(root, root_path, "host", kind="root", role="host")
    info = _read_docker() if with_docker else None
    dirs = [(RUN_NETNS, "named")] + [(d, "docker") for d in docker_netns_dirs(info)]
    for directory, kind in dirs:
        _scan(found, directory, kind)
    if with_processes:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            path = f"/proc/{entry}/ns/net"
            ino = inode_of(path)
            if ino is None:
                continue
            ns = found.get(ino)
            if ns is None:
                ns = found[ino] = Namespace(ino, path, f"pid:{entry}({_comm(int(entry))})", kind="process")
            ns.pids.append(int(entry))
    _apply_lab_roles(found)
    if info is not None:
        from . import docker
        docker.apply(found, info)
    return Discovery(found, info)


def docker_netns_dirs(info: Optional[dict]) -> list[str]:
    """Where Docker's namespaces are: the default place, and wherever the engine asked keeps them."""
    dirs = [DOCKER_NETNS]
    for d in (info or {}).get("netns_dirs", ()):
        if d not in dirs:
            dirs.append(d)
    return dirs


def _scan(found: dict[int, Namespace], directory: str, kind: str) -> None:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for n in names:
        path = os.path.join(directory, n)
        ino = inode_of(path)
        if ino is None:
            continue
        if ino not in found or found[ino].kind == "process":
            found[ino] = Namespace(ino, path, n, kind=kind)
        if kind == "docker" and n == "ingress_sbox":
            found[ino].role = "ingress_sbox"
        elif kind == "docker" and n.startswith("1-"):
            found[ino].role = "overlay"


def _read_docker() -> Optional[dict]:
    from . import docker
    c = docker.client()
    if c is None:
        return None
    try:
        return docker.read(c)
    except Exception:   # the engine went away between ping and read: names without Docker
        return None
    finally:
        c.close()


def _apply_lab_roles(found: dict[int, Namespace]) -> None:
    """The lab wrote down which Docker role each of its namespaces plays (LAB_STATE_FILE: read as
    data, so topology does not depend on the lab)."""
    import json
    try:
        with open(LAB_STATE_FILE) as f:
            roles = json.load(f).get("namespaces") or {}
    except (OSError, ValueError, AttributeError):
        return
    by_path = {ns.path: ns for ns in found.values()}
    for nsname, role in roles.items():
        ns = by_path.get(os.path.join(RUN_NETNS, nsname))
        if ns is None or not isinstance(role, dict) or not isinstance(role.get("label"), str):
            continue
        ns.name = role["label"]
        ns.node = role.get("node")
        ns.role = role.get("role", "host")
        ns.network = role.get("network")
        ns.containers = [dict(c) for c in role.get("containers") or [] if isinstance(c, dict)]


UNNAMED_PREFIX = "inode:"   #: the name of a namespace not read yet: "inode:4026532417"


def unnamed(inode: int) -> str:
    return f"{UNNAMED_PREFIX}{inode}"


class NetnsNames:
    """inode → name, from the last reading of the host's namespaces; never waits for a new one.

    Reading them (:func:`discover`) scans /proc and may wait seconds on Docker, and names are
    asked for inside bcc's ring-buffer callback. So an inode not in the last reading is named
    ``inode:N`` for now, and a background thread reads the namespaces again (at most every
    ``min_refresh_s``). A journey is named again when it finishes (:meth:`LiveTopology.named`),
    by which time that reading has usually come in."""

    def __init__(self, *, min_refresh_s: float = 0.5):
        self._min = min_refresh_s
        self.by_inode: dict[int, Namespace] = {}
        self._labels: dict[int, tuple[str, Optional[str]]] = {}
        self.docker: Optional[dict] = None
        self.refresh()
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    def refresh(self) -> None:
        """Read the namespaces now (on the caller's thread)."""
        by_inode, docker = discover()
        labels = {inode: (ns.name, ns.mode()) for inode, ns in by_inode.items()}
        # readers see the old dicts or the new ones, whole; the labels first, so that whoever finds an
        # inode in by_inode finds its label too
        self._labels, self.by_inode, self.docker = labels, by_inode, docker

    def request(self) -> None:
        """Ask for a new reading in the background; returns at once."""
        if self._closed.is_set():
            return
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="flowviz-netns-names", daemon=True)
                    self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wanted.wait()
            if self._closed.is_set():
                return
            self._wanted.clear()
            try:
                self.refresh()
            except Exception:   # a namespace vanishing mid-scan, Docker going away: the next request retries
                pass
            self._closed.wait(self._min)

    def close(self) -> None:
        self._closed.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def label(self, inode: int) -> tuple[str, Optional[str]]:
        """(name, mode) as of the last reading: what every live sighting is named with, worked out
        once a reading rather than once a sighting. An inode not in it is ``inode:N`` for now, and a
        reading is asked for."""
        got = self._labels.get(inode)
        if got is None:
            self.request()
            return unnamed(inode), None
        return got

    def resolve(self, spec: str) -> int:
        """A --netns argument (a name, a PID, a path, or inode:N) → inode."""
        from ..errors import BadInput
        if spec.startswith("inode:"):
            try:
                return int(spec[6:])
            except ValueError:
                raise BadInput(f"--netns {spec}: inode:N needs a number") from None
        if spec.isdigit():
            ino = inode_of(f"/proc/{spec}/ns/net")
            if ino is None:
                raise BadInput(f"--netns {spec}: no such process")
            return ino
        if spec.startswith("/"):
            ino = inode_of(spec)
            if ino is None:
                raise BadInput(f"--netns {spec}: cannot open it")
            return ino
        for ns in self.by_inode.values():
            if spec in (ns.name, os.path.basename(ns.path)) or any(c.get("name") == spec for c in ns.containers):
                return ns.inode
        raise BadInput(f"--netns {spec}: no network namespace of that name")
