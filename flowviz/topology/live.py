"""The topology a live follow keeps: names and links, current while namespaces come and go.

A snapshot is read at start. It is read again (at most every
``min_refresh_s``) when an event names a namespace or device it does not
know, and when the watcher notices that a namespace or link appeared or went
away (netlink link messages in every namespace, and the namespace
directories), so a container started during a follow gets its name.
"""

from __future__ import annotations

import threading
import time

from ..model import HopEvent
from ..paths import DOCKER_NETNS, RUN_NETNS
from .namespaces import NetnsNames
from .snapshot import Snapshot, take


class LiveTopology:
    def __init__(self, names: NetnsNames, *, min_refresh_s: float = 1.0, watch: bool = True):
        self.names = names
        self.min_refresh = min_refresh_s
        self._lock = threading.Lock()
        self.snapshot: Snapshot = take(rules=False, namespaces=names.by_inode, docker=names.docker)
        self._taken = time.monotonic()
        self._dirty = False
        self.watcher = Watcher(self) if watch else None

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._taken < self.min_refresh:
            return
        with self._lock:
            self.names.refresh()
            self.snapshot = take(rules=False, namespaces=self.names.by_inode, docker=self.names.docker)
            self._taken = time.monotonic()
            self._dirty = False
        if self.watcher is not None:
            self.watcher.rewatch()

    def mark_dirty(self) -> None:
        self._dirty = True

    def _current(self) -> Snapshot:
        if self._dirty:
            self.refresh()
        return self.snapshot

    def crossing(self, a: HopEvent, b: HopEvent):
        snap = self._current()
        if snap.link(a.netns_id, a.ifindex) is None or snap.link(b.netns_id, b.ifindex) is None:
            self.refresh()
            snap = self.snapshot
        return snap.crossing(a, b)

    def handed_to(self, received: HopEvent, frame):
        return self._current().handed_to(received, frame)

    def describe(self, ev: HopEvent) -> str:
        return self._current().describe(ev)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()


class Watcher:
    """Marks the topology dirty when links or namespaces change (a background thread)."""

    NS_DIRS = (RUN_NETNS, DOCKER_NETNS)

    def __init__(self, topo: LiveTopology):
        self.topo = topo
        self._stop = threading.Event()
        self._socks: list = []
        self._ns_listing = self._listing()
        self._rewatch = threading.Event()
        self.rewatch()
        self.thread = threading.Thread(target=self._run, name="flowviz-topology-watch", daemon=True)
        self.thread.start()

    def _listing(self) -> tuple:
        import os
        out = []
        for d in self.NS_DIRS:
            try:
                out.append(tuple(sorted(os.listdir(d))))
            except OSError:
                out.append(())
        return tuple(out)

    def rewatch(self) -> None:
        self._rewatch.set()

    def _open_sockets(self) -> None:
        from pyroute2 import IPRoute
        from ..netns import entered
        for s in self._socks:
            s.close()
        self._socks = []
        for ns in list(self.topo.names.by_inode.values()):
            try:
                with entered(ns.path):
                    ipr = IPRoute()
                ipr.bind()   # link/address/route notifications of that namespace
                self._socks.append(ipr)
            except OSError:
                continue

    def _run(self) -> None:
        import select
        while not self._stop.is_set():
            if self._rewatch.is_set():
                self._rewatch.clear()
                self._open_sockets()
            fds = {s.fileno(): s for s in self._socks}
            try:
                ready, _, _ = select.select(list(fds), [], [], 0.5)
            except (OSError, ValueError):
                ready = []
                self._rewatch.set()
            changed = False
            for fd in ready:
                try:
                    for msg in fds[fd].get():
                        if msg.get("event") in ("RTM_NEWLINK", "RTM_DELLINK"):
                            changed = True
                except Exception:   # a namespace that went away closes its socket
                    self._rewatch.set()
                    changed = True
            listing = self._listing()
            if listing != self._ns_listing:
                self._ns_listing = listing
                changed = True
            if changed:
                self.topo.mark_dirty()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        for s in self._socks:
            s.close()
        self._socks = []
