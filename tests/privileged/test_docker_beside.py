"""The tests' Docker engine runs beside a user's engine (the default socket, exec root and docker0):
every Docker test module does (tests/privileged/conftest.py: docker_engine), and its end checks that
the user's container still runs and its data root is untouched. Here: flowviz names each engine's
containers when pointed at it, through DOCKER_HOST or --docker-host."""

from __future__ import annotations

import json

import pytest

from dockerd import IMAGE, LABEL, USER_SOCKET
from support import flowviz

pytestmark = [pytest.mark.privileged, pytest.mark.docker]


def _names(stdout: str) -> set:
    return {c["name"] for ns in json.loads(stdout)["namespaces"] for c in ns.get("containers") or []}


def test_flowviz_asks_the_engine_it_is_pointed_at(docker_engine):
    mine = docker_engine.client.containers.run(IMAGE, ["/bin/sleep", "3600"], name="fvt-beside", detach=True,
                                               labels=LABEL)
    try:
        # DOCKER_HOST (the test engine set it) points flowviz at ours; --docker-host at the user's
        ours = _names(flowviz("topo", "--json", check=True).stdout)
        assert "fvt-beside" in ours and "users-app" not in ours
        for args in (("--docker-host", f"unix://{USER_SOCKET}", "topo", "--json"),
                     ("topo", "--docker-host", f"unix://{USER_SOCKET}", "--json")):
            theirs = _names(flowviz(*args, check=True).stdout)
            assert "fvt-beside" not in theirs
            if docker_engine.user is not None:   # our stand-in (a real user's engine has its own names)
                assert "users-app" in theirs
    finally:
        mine.remove(force=True)
