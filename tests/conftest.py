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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In the stock-kernel guest every test selected must run: a skip there is a failure."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("FLOWVIZ_STOCK_KERNEL") == "1" and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = f"skipped on the stock kernel, where it must run: {reason}"
