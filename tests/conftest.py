"""Shared test fixtures. Tests are split by privilege:

* tests/unit        no root, no network: runs everywhere
* tests/ui          Textual snapshots and Pilot key presses, fed from pcaps
* tests/privileged  namespaces, live bcc, dockerd: root only (marked ``privileged``)
"""

from __future__ import annotations

import os

import pytest

from support import sample


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
