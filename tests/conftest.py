"""Shared test fixtures. Tests are split by privilege:

* tests/unit        no root, no network: runs everywhere
* tests/ui          Textual snapshots and Pilot key presses, fed from pcaps
* tests/privileged  namespaces, live bcc, dockerd: root only (marked ``privileged``)
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def sample(name: str) -> str:
    """Path of a bundled capture, found through the package like the program does."""
    return str(resources.files("flowviz.pcaps") / name)


@pytest.fixture
def swarm_pcap() -> str:
    return sample("swarm-ingress.pcapng")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: run the suite with sudo ./scripts/test")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)
