"""A real Docker engine for tests: started here, and the machine put back as it was afterwards.

dockerd changes the host: FORWARD policy DROP, its iptables chains (which
create the tables, with iptables-nft, where there were none), docker0 and
docker_gwbridge, ip_forward, and bind mounts under /run/docker/netns. All of
that is recorded before and restored after, and the result is compared.
No registry is reachable: the test image is busybox-static, imported.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from typing import Optional

import machine

IMAGE = "flowviz-busybox:test"
LABEL = {"flowviz-test": "1"}
SOCKET = "/var/run/docker.sock"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "nc", "cat", "sleep", "echo", "ip", "ls")


def _run(*argv, check=False) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def _tables_of(dump: str) -> dict[str, str]:
    tables, cur = {}, None
    for l in dump.splitlines():
        if l.startswith("*"):
            cur = l[1:]
            tables[cur] = [l]
        elif cur is not None:
            tables[cur].append(l)
    return {t: "\n".join(lines) + "\n" for t, lines in tables.items()}


def restore(before: dict) -> None:
    """Undo what dockerd did to the host (best effort per item; the comparison says what remains)."""
    now = machine.state()
    for link in now["links"]:
        if link not in before["links"]:
            _run("ip", "link", "del", link)
    for fam, nft_family in (("iptables", "ip"), ("ip6tables", "ip6")):
        saved = _tables_of(before[fam])
        current = _tables_of(now[fam])
        for table in current:
            if table in saved:
                subprocess.run([f"{fam}-restore"], input=saved[table], text=True, capture_output=True)
            else:
                _run(fam, "-t", table, "-F")
                _run(fam, "-t", table, "-X")
                for chain in ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"):
                    _run(fam, "-t", table, "-P", chain, "ACCEPT")
                if f"table {nft_family} {table}" not in before["nft_tables"] and shutil.which("nft"):
                    _run("nft", "delete", "table", nft_family, table)
    for m in sorted(set(now["mounts"]) - set(before["mounts"]), reverse=True):
        _run("umount", "-l", m)
    for d in ("/run/docker/netns", "/var/run/docker/netns"):
        if os.path.isdir(d):
            for n in os.listdir(d):
                try:
                    os.unlink(os.path.join(d, n))
                except OSError:
                    pass
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write(before["ip_forward"])


def busybox_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        for d in ("tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
    return buf.getvalue()


class Engine:
    """dockerd for the test session (ours, or one that was already running)."""

    def __init__(self):
        self.proc: Optional[subprocess.Popen] = None
        self.before = machine.state()
        self.log = tempfile.NamedTemporaryFile(prefix="flowviz-dockerd-", suffix=".log", delete=False)
        self.client = None

    def start(self) -> None:
        import docker
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed: scripts/setup --tests installs docker.io")
        if not os.path.exists(BUSYBOX):
            raise RuntimeError("busybox-static is not installed: scripts/setup --tests installs it")
        if self._answers():
            raise RuntimeError("a Docker engine is already running; the Docker tests start and stop their own")
        argv = ["dockerd", "--host", f"unix://{SOCKET}", "--pidfile", "/run/flowviz-test-dockerd.pid"]
        data_root = os.environ.get("FLOWVIZ_DOCKER_DATA_ROOT")   # the stock-kernel guest's tmpfs
        if data_root:
            argv += ["--data-root", data_root]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, start_new_session=True)
        # under software emulation (the stock-kernel guest) dockerd and containerd take minutes
        deadline = time.monotonic() + float(os.environ.get("FLOWVIZ_DOCKER_START_S", "60"))
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log.name, errors="replace") as f:
                    tail = "".join(f.readlines()[-15:])
                raise RuntimeError(f"dockerd did not start; the end of its log ({self.log.name}):\n{tail}")
            time.sleep(0.3)
        self.client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=60)
        try:
            self.client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            repo, tag = IMAGE.split(":")
            self.client.api.import_image_from_data(busybox_tar(), repository=repo, tag=tag)

    def _answers(self) -> bool:
        if not os.path.exists(SOCKET):
            return False
        import docker
        try:
            docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=2).ping()
            return True
        except Exception:   # DockerException, connection refused: nobody answers
            return False

    def cleanup_objects(self) -> None:
        """Remove every container, service and network the tests made; leave the swarm."""
        c = self.client
        if c is None:
            return
        try:
            for s in c.services.list(filters={"label": "flowviz-test=1"}):
                s.remove()
        except Exception:   # not a swarm manager: no services
            pass
        for ct in c.containers.list(all=True, filters={"label": "flowviz-test=1"}):
            ct.remove(force=True)
        for ct in c.containers.list(all=True):
            if ct.name.startswith("fvt-") or ".fvt" in ct.name:
                ct.remove(force=True)
        try:
            c.swarm.leave(force=True)
        except Exception:   # not in a swarm
            pass
        for n in c.networks.list():
            if n.name.startswith("fvt-"):
                try:
                    n.remove()
                except Exception:   # still in use by a task being torn down
                    time.sleep(1)
                    n.remove()

    def stop(self) -> list[str]:
        """Stop dockerd, restore the machine; returns what still differs (empty when all is back)."""
        try:
            self.cleanup_objects()
        finally:
            if self.client is not None:
                self.client.close()
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            restore(self.before)
        return machine.differences(self.before, machine.state())


def netns_path(container) -> str:
    container.reload()
    return f"/proc/{container.attrs['State']['Pid']}/ns/net"


def request(ns_path: str, addr: str, port: int, payload: bytes = b"hello flowviz\n", timeout: float = 3) -> bytes:
    """Connect from inside a namespace (a container's) and return the echoed answer."""
    import socket
    from flowviz.netns import entered
    with entered(ns_path):
        s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def wait_listening(ns_path: str, addr: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if request(ns_path, addr, port, timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on {addr}:{port}")
        time.sleep(0.2)


ECHO = ["/bin/nc", "-ll", "-p", "80", "-e", "/bin/cat"]


def ip_of(container, network: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
