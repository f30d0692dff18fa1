"""The tests' Docker engine runs beside a user's engine (default socket, exec root and docker0)
without touching it: the user's data root is left as it was, its containers keep running, and
flowviz names each engine's containers when pointed at it (DOCKER_HOST, --docker-host)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import machine
from dockerd import IMAGE, LABEL, USER_SOCKET, Engine, _answers, busybox_tar, restore
from support import flowviz

pytestmark = [pytest.mark.privileged, pytest.mark.docker]


def _tree(root: str) -> dict:
    """Every file under ``root`` with its size and modification time."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def users_engine():
    """A stand-in for a user's engine: the default socket, exec root and bridge, a data root of its
    own, one container running. Stopped, and the machine put back, at the end."""
    import docker
    if _answers(USER_SOCKET):
        pytest.skip("an engine already answers on the default socket: this test brings its own stand-in")
    before = machine.state()
    runtime = [p for p in ("/var/run/docker", "/var/run/docker.sock") if not os.path.exists(p)]   # made by it
    data = tempfile.mkdtemp(prefix="flowviz-user-docker-")
    log = open(f"{data}.log", "w")
    proc = subprocess.Popen(["dockerd", "--data-root", data, "--pidfile", f"{data}.pid"], stdout=log, stderr=log,
                            start_new_session=True)
    client = None
    try:
        deadline = time.monotonic() + float(os.environ.get("FLOWVIZ_DOCKER_START_S", "60"))
        while not _answers(USER_SOCKET):
            assert proc.poll() is None and time.monotonic() < deadline, "the stand-in user engine did not start"
            time.sleep(0.3)
        client = docker.DockerClient(base_url=f"unix://{USER_SOCKET}", timeout=60)
        repo, tag = IMAGE.split(":")
        client.api.import_image_from_data(busybox_tar(), repository=repo, tag=tag)
        ct = client.containers.run(IMAGE, ["/bin/sleep", "3600"], name="users-app", detach=True, labels=LABEL)
        time.sleep(2)   # let the engine settle (image import, container start) before its files are read
        yield {"client": client, "container": ct, "data": data}
    finally:
        if client is not None:
            for ct in client.containers.list(all=True):
                ct.remove(force=True)
            client.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        restore(before)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
        for p in (f"{data}.pid", log.name, *runtime):
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)


def _names(stdout: str) -> set:
    return {c["name"] for ns in json.loads(stdout)["namespaces"] for c in ns.get("containers") or []}


def test_the_test_engine_leaves_a_users_engine_and_its_data_alone(users_engine):
    data_before = _tree(users_engine["data"])
    ours = Engine()
    try:
        ours.start()
        mine = ours.client.containers.run(IMAGE, ["/bin/sleep", "3600"], name="fvt-beside", detach=True,
                                          labels=LABEL)
        # DOCKER_HOST (set by the test engine) points flowviz at ours; --docker-host at the user's
        assert "fvt-beside" in _names(flowviz("topo", "--json", check=True).stdout)
        theirs = _names(flowviz("--docker-host", f"unix://{USER_SOCKET}", "topo", "--json", check=True).stdout)
        assert "users-app" in theirs and "fvt-beside" not in theirs
        theirs = _names(flowviz("topo", "--docker-host", f"unix://{USER_SOCKET}", "--json", check=True).stdout)
        assert "users-app" in theirs
        mine.remove(force=True)
    finally:
        left = ours.stop()
    assert left == [], f"the test engine left the machine changed: {left}"
    assert users_engine["client"].ping()
    users_engine["container"].reload()
    assert users_engine["container"].status == "running"
    assert _tree(users_engine["data"]) == data_before
