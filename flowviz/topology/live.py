"""The topology a live follow keeps: names and links, current while namespaces come and go.

A snapshot is read at start. It is read again in the background (the watcher's
thread, at most every ``min_refresh_s``) when an event names a namespace or
device it does not know, and when the watcher notices that a namespace or link
appeared or went away (netlink link messages in every namespace, and the
namespace directories), so a container started during a follow gets its name.
The correlator's questions are answered from the snapshot at hand and never wait
for a reading: one can take seconds (/proc, Docker), while sightings queue up.
"""

from __future__ import annotations

import os
import threading
import time

from ..model import HopEvent
from ..paths import RUN_NETNS
from .namespaces import UNNAMED_PREFIX, NetnsNames, docker_netns_dirs
from .snapshot import Snapshot, take


class LiveTopology:
    def __init__(self, names: NetnsNames, *, min_refresh_s: float = 1.0, watch: bool = True):
        self.names = names
        self.min_refresh = min_refresh_s
        self._lock = threading.Lock()
        self.snapshot: Snapshot = take(rules=False, namespaces=names.by_inode, docker=names.docker)
        self._taken = time.monotonic()
        self.watcher = Watcher(self) if watch else None

    def refresh(self) -> None:
        """Read names and links again, now, on the caller's thread (the watcher's)."""
        with self._lock:
            self.names.refresh()
            self.snapshot = take(rules=False, namespaces=self.names.by_inode, docker=self.names.docker)
            self._taken = time.monotonic()
        if self.watcher is not None:
            self.watcher.rewatch()

    def request(self) -> None:
        """Ask for a new reading; until it comes, questions are answered from the current one."""
        if self.watcher is not None:
            self.watcher.want()

    def crossing(self, a: HopEvent, b: HopEvent):
        snap = self.snapshot
        if snap.link(a.netns_id, a.ifindex) is None or snap.link(b.netns_id, b.ifindex) is None:
            self.request()
        return snap.crossing(a, b)

    def handed_to(self, received: HopEvent, frame):
        return self.snapshot.handed_to(received, frame)

    def describe(self, ev: HopEvent) -> str:
        return self.snapshot.describe(ev)

    def named(self, ev: HopEvent) -> HopEvent:
        """The sighting with its namespace's name, if it was sighted before the name was known."""
        netns = ev.netns
        if netns is None or not netns.startswith(UNNAMED_PREFIX) or not ev.netns_id:
            return ev
        ns = self.names.by_inode.get(ev.netns_id)
        return ev if ns is None else ev._replace(netns=ns.name, mode=ns.mode())

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()


class Watcher:
    """Marks the topology dirty when links or namespaces change (a background thread)."""


    def __init__(self, topo: LiveTopology):
        self.topo = topo
        self._stop = threading.Event()
        self._socks: list = []
        self._ns_listing = self._listing()
        self._rewatch = threading.Event()
        self._wanted = False   # a reading is due (asked for, or links changed)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipe_open = True
        self.rewatch()
        self.thread = threading.Thread(target=self._run, name="flowviz-topology-watch", daemon=True)
        self.thread.start()

    def want(self) -> None:
        """A reading is due: take one as soon as ``min_refresh_s`` allows."""
        self._wanted = True
        if self._pipe_open:
            try:
                os.write(self._wake_w, b"!")
            except OSError:   # the pipe is full: a wake-up is pending anyway
                pass

    def _listing(self) -> tuple:
        out = []
        for d in (RUN_NETNS, *docker_netns_dirs(self.topo.names.docker)):
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
        while not self._stop.is_set():
            if self._rewatch.is_set():
                self._rewatch.clear()
                self._open_sockets()
            if self._changed():
                self._wanted = True
            if self._wanted:
                due = self.topo._taken + self.topo.min_refresh - time.monotonic()
                if due <= 0:
                    self._wanted = False
                    try:
                        self.topo.refresh()
                    except Exception:   # a namespace vanishing mid-read: the next change retries
                        pass

    def _changed(self) -> bool:
        """Wait up to 0.5 s (less when a reading is due or asked for); True if links or namespaces changed."""
        import select
        fds = {s.fileno(): s for s in self._socks}
        timeout = 0.5
        if self._wanted:
            timeout = min(timeout, max(0.0, self.topo._taken + self.topo.min_refresh - time.monotonic()))
        try:
            ready, _, _ = select.select([self._wake_r, *fds], [], [], timeout)
        except (OSError, ValueError):
            ready = []
            self._rewatch.set()
        changed = False
        for fd in ready:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 4096)
                except OSError:
                    pass
                continue
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
        return changed

    def stop(self) -> None:
        self._stop.set()
        self.want()
        self.thread.join(timeout=5)
        for s in self._socks:
            s.close()
        self._socks = []
        if self._pipe_open and not self.thread.is_alive():
            self._pipe_open = False
            os.close(self._wake_r)
            os.close(self._wake_w)
