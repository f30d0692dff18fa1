"""Fixtures for tests that need root: the lab, and a guard that the root
namespace (links, routes, rules, iptables, mounts, lab namespaces) is the same
after a test as before it — also when the test fails."""

from __future__ import annotations

import pytest

import machine
from support import flowviz

pytestmark = pytest.mark.privileged


@pytest.fixture
def root_unchanged():
    before = machine.state()
    yield
    assert machine.differences(before, machine.state()) == []


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
