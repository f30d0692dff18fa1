"""The lab, proven end to end with real traffic, and cleaned up in every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from captures import capturing
from support import flowviz
from flowviz.lab.scenarios import TARGETS
from flowviz.lab.traffic import one_request

pytestmark = pytest.mark.privileged


def lab_netns() -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith("fvlab-")) if os.path.isdir("/run/netns") else []


@pytest.fixture
def clean_lab(root_unchanged):
    flowviz("lab", "down")
    try:
        yield
    finally:
        flowviz("lab", "down")
    assert lab_netns() == []


def test_swarm_ingress_answered_by_the_task_on_node2_inside_vxlan(clean_lab, tmp_path):
    flowviz("lab", "up", check=True)
    # capture node1's underlay while the client connects to the published port
    cap = str(tmp_path / "underlay.pcapng")
    with capturing("fvlab-node1", ["eth0"], cap):
        from flowviz.netns import entered
        import socket
        with entered("fvlab-client"):
            s = socket.socket()
        s.settimeout(3)
        s.connect(("192.168.21.192", 20229))
        s.sendall(b"hello\n")
        answer = s.recv(1024)
        s.close()
    assert answer.startswith(b"flowviz-lab my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b hello")
    out = subprocess.run(["tshark", "-r", cap, "-Y", "vxlan", "-T", "fields", "-e", "udp.dstport", "-e", "vxlan.vni",
                          "-e", "ip.dst", "-e", "tcp.dstport"], capture_output=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    assert rows, "no VXLAN packet seen on node1's underlay"
    assert all(r[0] == "4789" and r[1] == "4096" for r in rows)
    # node1 → node2 carrying the request to port 20229, inside VNI 4096
    assert any("192.168.21.193" in r[2] and "20229" in r[3] for r in rows)


def test_status_reports_roles_ipvs_and_the_answer(clean_lab):
    flowviz("lab", "up", check=True)
    st = json.loads(flowviz("lab", "status", "--json", check=True).stdout)
    assert st["scenarios"] == ["swarm-ingress"]
    assert st["checks"]["swarm-ingress"]["answered"] is True
    assert "emulated" in st["ipvs"] or "kernel IPVS" in st["ipvs"]
    roles = {n: r["role"] for n, r in st["namespaces"].items()}
    assert roles["fvlab-n1-sbox"] == "ingress_sbox" and roles["fvlab-n1-ingress"] == "overlay"
    assert st["namespaces"]["fvlab-n2-task"]["label"] == "node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b"


@pytest.mark.parametrize("scenario", ["overlay", "bridge", "macvlan", "host", "none", "container"])
def test_each_scenario_answers_real_requests(clean_lab, scenario):
    flowviz("lab", "up", "--scenario", scenario, check=True)
    for proto in ("tcp", "udp"):
        r = flowviz("lab", "traffic", "--scenario", scenario, "--count", "5", "--rate", "50", "--proto", proto)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "answered 5  lost 0" in r.stdout


def test_up_twice_is_harmless_and_all_scenarios_combine(clean_lab):
    flowviz("lab", "up", "--scenario", "all", check=True)
    first = lab_netns()
    flowviz("lab", "up", "--scenario", "all", check=True)
    assert lab_netns() == first
    for target in TARGETS.values():
        assert one_request(target, "tcp", timeout=2) is not None, target.label


def test_traffic_counts_and_latency(clean_lab):
    flowviz("lab", "up", check=True)
    r = flowviz("lab", "traffic", "--count", "20", "--rate", "100")
    assert r.returncode == 0
    assert "sent 20  answered 20  lost 0" in r.stdout and "latency ms" in r.stdout


def test_traffic_to_a_scenario_that_is_down_is_a_one_line_error(clean_lab):
    r = flowviz("lab", "traffic", "--scenario", "bridge")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not up" in r.stderr


def test_down_cleans_up_after_up_was_killed_halfway(clean_lab):
    p = subprocess.Popen([sys.executable, "-m", "flowviz", "lab", "up", "--scenario", "all"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(lab_netns()) < 5 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert lab_netns(), "up was not caught halfway"
    assert flowviz("lab", "down").returncode == 0
    assert lab_netns() == []
    leftover = subprocess.run(["pgrep", "-f", "flowviz.lab.server"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""


def test_a_failing_up_undoes_itself(clean_lab, monkeypatch):
    from flowviz import lab
    from flowviz.errors import LabError
    from flowviz.lab import scenarios

    def broken(self):
        self.base()
        raise LabError("injected failure after the base was built")
    monkeypatch.setitem(scenarios.BUILDERS, "bridge", broken)
    with pytest.raises(LabError):
        lab.up("bridge", quiet=True)
    assert lab_netns() == []


def test_not_root_is_a_one_line_error():
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                        "flowviz", "lab", "up"], capture_output=True, text=True, cwd="/")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["flowviz: flowviz lab up needs root (try: sudo flowviz ...)"]
