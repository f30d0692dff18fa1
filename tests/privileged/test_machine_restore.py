"""The Docker tests' restore undoes what dockerd does to a host that already had rules of its own."""

from __future__ import annotations

import subprocess

import pytest

import machine
from dockerd import restore

pytestmark = pytest.mark.privileged


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


def test_restore_keeps_existing_rules_and_removes_dockerds(root_unchanged):
    original = machine.state()
    try:
        # someone's rules, there before dockerd
        sh("iptables", "-N", "FVT-KEEP")
        sh("iptables", "-A", "FVT-KEEP", "-j", "RETURN")
        sh("iptables", "-A", "INPUT", "-s", "198.51.100.7", "-j", "FVT-KEEP")
        before = machine.state()
        assert "FVT-KEEP" in before["iptables"]
        # what dockerd does to a host
        sh("iptables", "-P", "FORWARD", "DROP")
        sh("iptables", "-N", "DOCKER")
        sh("iptables", "-A", "FORWARD", "-o", "fvt-docker0", "-j", "DOCKER")
        sh("iptables", "-t", "nat", "-N", "DOCKER")
        sh("iptables", "-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
        sh("ip", "link", "add", "fvt-docker0", "type", "bridge")
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1" if before["ip_forward"] == "0" else "0")
        changed = machine.differences(before, machine.state())
        assert {c.split(":")[0] for c in changed} >= {"links", "iptables", "ip_forward"}
        assert "links: +fvt-docker0" in changed   # what changed, by name
        restore(before)
        assert machine.differences(before, machine.state()) == []
        assert "FVT-KEEP" in machine.state()["iptables"]
    finally:
        restore(original)
