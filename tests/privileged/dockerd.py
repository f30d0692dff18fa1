"""A real Docker engine for tests: started here, and the machine put back as it was afterwards.

The engine is the tests' own: its own socket, data root, exec root, pidfile and default bridge
(BRIDGE, not docker0), so it runs beside a user's engine on the default socket without touching
its data; flowviz finds it through DOCKER_HOST, as the Docker CLI would.

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
import subprocess
import tarfile
import tempfile
import time
from typing import Optional

import machine
from support import stop_group

IMAGE = "flowviz-busybox:test"
LABEL = {"flowviz-test": "1"}
BASE = "/run/flowviz-test-docker"            # socket, pidfile, exec root (short: socket paths are limited)
SOCKET = f"{BASE}/docker.sock"
EXEC_ROOT = f"{BASE}/exec"
DATA_ROOT = "/var/lib/flowviz-test-docker"   # removed at the end (unless FLOWVIZ_DOCKER_DATA_ROOT says where)
BRIDGE, BRIDGE_ADDR = "fvt-docker0", "172.31.254.1/24"   # the engine's default bridge, made here
USER_SOCKET = "/var/run/docker.sock"         # where a user's engine answers, if one runs
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
    for d in ("/run/docker/netns", "/var/run/docker/netns", f"{EXEC_ROOT}/netns"):
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


def _stop_daemon(proc: Optional[subprocess.Popen]) -> None:
    """SIGTERM to dockerd's process group (containerd too), SIGKILL if it has not gone in 30 s."""
    if proc is None or proc.poll() is not None:
        return
    stop_group(proc, 30)


def _start_daemon(argv: list[str], socket_path: str, log) -> tuple[subprocess.Popen, object]:
    """dockerd started (its own process group), answering on ``socket_path``, with the test image:
    (the process, a client). Under software emulation (the stock-kernel guest) dockerd and
    containerd take minutes: FLOWVIZ_DOCKER_START_S."""
    import docker
    proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + float(os.environ.get("FLOWVIZ_DOCKER_START_S", "60"))
    while not _answers(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_daemon(proc)
            with open(log.name, errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
            raise RuntimeError(f"dockerd did not start; the end of its log ({log.name}):\n{tail}")
        time.sleep(0.3)
    client = docker.DockerClient(base_url=f"unix://{socket_path}", timeout=60)
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        repo, tag = IMAGE.split(":")
        client.api.import_image_from_data(busybox_tar(), repository=repo, tag=tag)
    return proc, client


def _answers(socket_path: str) -> bool:
    if not os.path.exists(socket_path):
        return False
    import docker
    try:
        docker.DockerClient(base_url=f"unix://{socket_path}", timeout=2).ping()
        return True
    except Exception:   # DockerException, connection refused: nobody answers
        return False


class Engine:
    """dockerd for a test module, with everything of its own (see the module's docstring)."""

    def __init__(self):
        self.proc: Optional[subprocess.Popen] = None
        self.before = machine.state()
        self.log = tempfile.NamedTemporaryFile(prefix="flowviz-dockerd-", suffix=".log", delete=False)
        self.client = None
        self.user: Optional["StandIn"] = None   # the user's engine it runs beside, when the fixture made one
        self.data_root = os.environ.get("FLOWVIZ_DOCKER_DATA_ROOT") or DATA_ROOT
        self._remove_data_root = not os.path.exists(self.data_root)
        self._docker_host = os.environ.get("DOCKER_HOST")

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed: scripts/setup --tests installs docker.io")
        if not os.path.exists(BUSYBOX):
            raise RuntimeError("busybox-static is not installed: scripts/setup --tests installs it")
        if _answers(SOCKET):
            raise RuntimeError(f"a test engine from an earlier run still answers on {SOCKET}: stop it first")
        os.makedirs(BASE, mode=0o700, exist_ok=True)
        _run("ip", "link", "add", BRIDGE, "type", "bridge", check=True)
        _run("ip", "addr", "add", BRIDGE_ADDR, "dev", BRIDGE, check=True)
        _run("ip", "link", "set", BRIDGE, "up", check=True)
        argv = ["dockerd", "--host", f"unix://{SOCKET}", "--pidfile", f"{BASE}/docker.pid",
                "--exec-root", EXEC_ROOT, "--data-root", self.data_root, "--bridge", BRIDGE]
        self.proc, self.client = _start_daemon(argv, SOCKET, self.log)
        os.environ["DOCKER_HOST"] = f"unix://{SOCKET}"   # flowviz, run by the tests, finds this engine

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
            _stop_daemon(self.proc)
            restore(self.before)
            self._forget()
        return machine.differences(self.before, machine.state())

    def _forget(self) -> None:
        """The engine's own files: its runtime directory, and its data root if this run made it."""
        if self._docker_host is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = self._docker_host
        shutil.rmtree(BASE, ignore_errors=True)
        self.log.close()
        os.unlink(self.log.name)   # kept only when dockerd did not start (the error names it)
        if self._remove_data_root:
            shutil.rmtree(self.data_root, ignore_errors=True)


class StandIn:
    """A stand-in for a user's engine: the default socket, exec root and docker0, a data root of its
    own, one container running. The Docker tests run beside it to show they leave such an engine
    alone; stopped, and the machine put back, at the end."""

    def __init__(self):
        self.before = machine.state()
        self.made = [p for p in ("/var/run/docker", "/var/run/docker.sock") if not os.path.exists(p)]
        self.data = tempfile.mkdtemp(prefix="flowviz-user-docker-")
        self.log = open(f"{self.data}.log", "w")
        self.proc: Optional[subprocess.Popen] = None
        self.client = None
        self.container = None

    @staticmethod
    def wanted() -> bool:
        """On this machine's kernel, when no engine answers on the default socket already (under
        emulation, the stock-kernel guest, one engine takes minutes: ours runs alone there)."""
        return os.environ.get("FLOWVIZ_STOCK_KERNEL") != "1" and not _answers(USER_SOCKET)

    def start(self) -> None:
        self.proc, self.client = _start_daemon(["dockerd", "--data-root", self.data, "--pidfile", f"{self.data}.pid"],
                                               USER_SOCKET, self.log)
        self.container = self.client.containers.run(IMAGE, ["/bin/sleep", "3600"], name="users-app", detach=True,
                                                    labels=LABEL)
        self.settle()

    def settle(self, quiet_s: float = 2.0, limit_s: float = 60.0) -> None:
        """Wait until its data root and the machine's links, routes and rules stop changing (image
        import, container start: slower on a cold machine; docker0's IPv6 link-local address and its
        route come a second or two after the container's veth brings it up, once duplicate address
        detection is done), so what changes later is not its own doing: the tests' engine takes
        the machine as it is then for what it must leave behind. (CI once saw that route appear after
        the snapshot, and blamed it on the tests.)"""
        deadline = time.monotonic() + limit_s
        last = (self.tree(), machine.state())
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = (self.tree(), machine.state())
            if now == last:
                return
            last = now

    #: its containerd's own metadata database: containerd rewrites it on its own schedule (leases and
    #: garbage collection after a container start; seen once in CI, never while idle for 100 s)
    OWN_BOOKKEEPING = ("containerd/daemon/io.containerd.metadata.v1.bolt/meta.db",)

    def tree(self) -> dict:
        """Every file of its data root (but its containerd's bookkeeping), with size and modification time."""
        out = {}
        for d, _, files in os.walk(self.data):
            for f in files:
                p = os.path.join(d, f)
                if os.path.relpath(p, self.data) in self.OWN_BOOKKEEPING:
                    continue
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                out[os.path.relpath(p, self.data)] = (st.st_size, st.st_mtime_ns)
        return out

    def still_running(self) -> bool:
        try:
            self.container.reload()
            return self.client.ping() and self.container.status == "running"
        except Exception:   # the engine or its container is gone
            return False

    def stop(self) -> None:
        try:
            if self.client is not None:
                for ct in self.client.containers.list(all=True):
                    ct.remove(force=True)
                self.client.close()
        finally:
            _stop_daemon(self.proc)
            restore(self.before)
            self.log.close()
            shutil.rmtree(self.data, ignore_errors=True)
            for p in (f"{self.data}.pid", self.log.name, *self.made):
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.lexists(p):
                    os.unlink(p)


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
