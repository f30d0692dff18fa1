"""Naming namespaces never waits: an unknown inode is named "inode:N" at once and read in the background,
and a journey that ends after that reading carries the real name."""

from __future__ import annotations

import threading

from flowviz.correlate import Correlator
from flowviz.model import ChangeKind as K, HopEvent
from flowviz.samples import tcp_frame
from flowviz.topology import namespaces
from flowviz.topology.live import LiveTopology
from flowviz.topology.namespaces import Namespace, NetnsNames

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
SYN = tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000, 80, ip_id=7, seq=100)
HOST, NEW = 4026531840, 4026532999


class SlowDiscovery:
    """discover() that knows only the host until ``grow()``, and that blocks while ``gate`` is shut."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0
        self.found = {HOST: Namespace(HOST, "/proc/1/ns/net", "host", kind="root")}

    def grow(self):
        self.found = {**self.found, NEW: Namespace(NEW, "/run/netns/web", "web", kind="named",
                                                 containers=[{"name": "web", "mode": "bridge"}])}

    def __call__(self, **_kw):
        self.calls += 1
        self.gate.wait()
        return dict(self.found), None


def _wait_for(cond, what):
    done = threading.Event()
    for _ in range(500):
        if cond():
            return
        done.wait(0.01)
    raise AssertionError(f"never happened: {what}")


def test_an_unknown_inode_is_named_at_once_while_a_slow_reading_runs_in_the_background(monkeypatch):
    disc = SlowDiscovery()
    monkeypatch.setattr(namespaces, "discover", disc)
    names = NetnsNames(min_refresh_s=0.0)
    try:
        assert names.label(HOST) == ("host", None)
        disc.gate.clear()          # the next reading hangs (Docker not answering, say)
        disc.grow()
        # answered from the last reading, while the new one is stuck: the caller never waits for it
        assert names.label(NEW) == (f"inode:{NEW}", None)
        _wait_for(lambda: disc.calls == 2, "a background reading was started")
        assert names.label(NEW) == (f"inode:{NEW}", None)
        disc.gate.set()
        _wait_for(lambda: NEW in names.by_inode, "the background reading came in")
        assert names.label(NEW) == ("web", "bridge")   # and how it is networked, worked out with it
    finally:
        disc.gate.set()
        names.close()
    assert not names._thread.is_alive()


def test_a_journey_sighted_before_its_namespace_was_read_ends_with_its_name(monkeypatch):
    disc = SlowDiscovery()
    monkeypatch.setattr(namespaces, "discover", disc)
    monkeypatch.setattr("flowviz.topology.live.take", lambda **kw: _NoLinks())
    names = NetnsNames(min_refresh_s=0.0)
    topo = LiveTopology(names, watch=False)
    try:
        ev = HopEvent(1000, "eth0", "tx", SYN, netns=names.label(NEW)[0], netns_id=NEW, ifindex=2)
        assert ev.netns == f"inode:{NEW}"
        disc.grow()
        names.request()
        _wait_for(lambda: NEW in names.by_inode, "the background reading came in")
        later = HopEvent(2000, "veth1", "rx", SYN, netns="host", netns_id=HOST, ifindex=5)
        c = Correlator(topology=topo)
        c.feed(ev)
        c.feed(later)
        (j,) = c.flush()
        assert j.path == ["web/eth0", "host/veth1"]
        assert j.hops[1].changes[0].kind is K.VETH
        assert j.hops[1].changes[0].before == "web/eth0"
    finally:
        topo.close()
        names.close()


class _NoLinks:
    """A snapshot that knows no link (the crossing is guessed from namespaces)."""

    def link(self, netns, ifindex):
        return None

    def crossing(self, a, b):
        return None

    def handed_to(self, received, frame):
        return None

    def describe(self, ev):
        return ""
