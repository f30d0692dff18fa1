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
    """The tests' own Docker engine for a module's tests, beside a stand-in for a user's engine on
    the default socket (dockerd.StandIn); afterwards the machine is as before and the stand-in's
    data root and container untouched."""
    from dockerd import Engine, StandIn
    user = StandIn() if StandIn.wanted() else None
    untouched, running, touched = True, True, []
    try:
        if user is not None:
            user.start()
            data_before = user.tree()
        eng = Engine()   # what it restores to includes the user's engine
        eng.user = user
        try:
            eng.start()
            yield eng
        finally:
            changed = eng.stop()
        if user is not None:
            running = user.still_running()
            after = user.tree()
            touched = sorted(p for p in set(data_before) | set(after) if data_before.get(p) != after.get(p))
            untouched = running and not touched
    finally:
        if user is not None:
            user.stop()
    assert changed == [], f"the Docker tests left the machine changed: {changed}"
    assert untouched, (f"the Docker tests touched the user's engine: its container "
                       f"{'runs' if running else 'stopped'}; files changed in its data root: {touched[:8]}")
