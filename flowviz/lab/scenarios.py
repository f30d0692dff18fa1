"""The lab's scenarios, built from namespaces with the notes' addresses.

Every scenario sits on one base: a client and two swarm nodes on an underlay
192.168.21.0/24 (a switch bridge in its own namespace). Scenarios only add to
it, and each building step is idempotent, so scenarios combine and ``up`` can
run twice.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from .. import reference as ref, samples
from ..errors import LabError
from .net import Ns, run_in
from .state import LabState

MAC = samples.MAC
OVERLAY_ID = samples.OVERLAY_NETNS      # "1-mp3mrjuxu0": the ingress network's overlay namespace
USER_OVERLAY_ID = samples.USER_OVERLAY_NETNS
TASK_NAME = samples.TASK
FWMARK = ref.FWMARK                       # 286: what Docker's mangle rule sets for the published port
PUBLISHED = ref.PUBLISHED_PORT            # 20229
MTU = ref.OVERLAY_MTU                     # 1450


@dataclass(frozen=True)
class Target:
    """Where a scenario's reference request goes from."""

    netns: str
    addr: str
    port: int
    label: str


class Lab:
    """Builds scenarios; keeps one netlink socket per namespace while it works."""

    def __init__(self, state: LabState):
        self.state = state
        self._ns: dict[str, Ns] = {}

    def ns(self, name: str, label: str, **role) -> Ns:
        if name not in self._ns:
            self._ns[name] = Ns(name)
        self.state.role(name, label, **role)
        return self._ns[name]

    def close(self) -> None:
        for n in self._ns.values():
            n.close()
        self._ns.clear()

    # -- shared parts -------------------------------------------------------------

    def base(self) -> None:
        """Client, underlay switch, node1 (192.168.21.192) and node2 (192.168.21.193)."""
        sw = self.ns("fvlab-underlay", "underlay", role="underlay")
        sw.bridge("sw0")
        for ns_name, label, ip, mac, port in (
                ("fvlab-client", "client", samples.CLIENT_IP, MAC["client"], "p-client"),
                ("fvlab-node1", "node1", samples.NODE1_IP, MAC["n1eth0"], "p-node1"),
                ("fvlab-node2", "node2", samples.NODE2_IP, MAC["n2eth0"], "p-node2")):
            role = "client" if label == "client" else "host"
            n = self.ns(ns_name, label, node=None if label == "client" else label, role=role)
            n.veth("eth0", sw, port, mac=mac)
            sw.enslave(port, "sw0")
            n.addr("eth0", f"{ip}/24")
            if label != "client":
                n.sysctl("net.ipv4.ip_forward", "1")

    def gwbridge(self, node: str, mac: str) -> Ns:
        n = self.ns(f"fvlab-{node}", node)
        n.bridge("docker_gwbridge", mac=mac)
        n.addr("docker_gwbridge", f"{ref.GWBRIDGE_IP}/16")
        self.state.bridges[f"fvlab-{node}/docker_gwbridge"] = "docker_gwbridge"
        # Docker masquerades what the host itself sends into the gwbridge, and what leaves it
        n.iptables("nat", "POSTROUTING", "-o", "docker_gwbridge", "-m", "addrtype", "--src-type", "LOCAL",
                   "-j", "MASQUERADE")
        n.iptables("nat", "POSTROUTING", "-s", "172.18.0.0/16", "!", "-o", "docker_gwbridge", "-j", "MASQUERADE")
        return n

    def overlay(self, node: str, short: str, net_id: str, network: str, vni: int) -> Ns:
        """The overlay namespace ``1-<id>`` of one node: br0 + vxlan0 (socket in the node namespace)."""
        node_ns = self.ns(f"fvlab-{node}", node)
        ov = self.ns(f"fvlab-{short}", f"{node}:{net_id}", node=node, role="overlay",
                     network=network)
        ov.bridge("br0", mtu=MTU)
        local = samples.NODE1_IP if node == "node1" else samples.NODE2_IP
        peer = samples.NODE2_IP if node == "node1" else samples.NODE1_IP
        node_ns.vxlan(ov, "vxlan0", vni=vni, local=local, port=ref.VXLAN_PORT, mtu=MTU, peers=(peer,))
        ov.enslave("vxlan0", "br0")
        self.state.bridges[f"fvlab-{short}/br0"] = network
        return ov

    def task(self) -> Ns:
        return self.ns("fvlab-n2-task", f"node2:{TASK_NAME}", node="node2", role="container")

    def server(self, ns_name: str, ports: list[int], name: str) -> None:
        """Start the answering server in a namespace unless one already serves these ports there."""
        for s in self.state.servers:
            if s["netns"] == ns_name and set(ports) <= set(s["ports"]) and _alive(s["pid"]):
                return
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns_name, sys.executable, "-m", "flowviz.lab.server",
             "--name", name, "--ports", *map(str, ports)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self.state.servers.append({"pid": p.pid, "netns": ns_name, "ports": ports})
        self.state.save()
        line = p.stdout.readline()
        if line.strip() != b"ready":
            err = p.stderr.read().decode(errors="replace").strip().splitlines()
            raise LabError(f"server in {ns_name} did not start: {err[-1] if err else 'no output'}")
        p.stdout.close()
        p.stderr.close()

    # -- scenarios ----------------------------------------------------------------------

    def swarm_ingress(self) -> Target:
        self.base()
        n1 = self.gwbridge("node1", MAC["n1gw"])
        sbox = self.ns("fvlab-n1-sbox", "node1:ingress_sbox", node="node1", role="ingress_sbox")
        n1.veth("veth8a3c2f1", sbox, "eth1", peer_mac=MAC["sbox_eth1"])
        n1.enslave("veth8a3c2f1", "docker_gwbridge")
        sbox.addr("eth1", f"{ref.SBOX_GW_IP}/16")
        sbox.default_route(ref.GWBRIDGE_IP)
        sbox.sysctl("net.ipv4.ip_forward", "1")
        # node1: the published port goes to ingress_sbox (Docker's DOCKER-INGRESS chain)
        n1.iptables("nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER-INGRESS")
        for proto in ("tcp", "udp"):
            n1.iptables("nat", "DOCKER-INGRESS", "-p", proto, "--dport", str(PUBLISHED), "-j", "DNAT",
                        "--to-destination", f"{ref.SBOX_GW_IP}:{PUBLISHED}")
        # ingress overlay on both nodes
        ov1 = self.overlay("node1", "n1-ingress", OVERLAY_ID, "ingress", samples.INGRESS_VNI)
        ov2 = self.overlay("node2", "n2-ingress", OVERLAY_ID, "ingress", samples.INGRESS_VNI)
        ov1.veth("veth0", sbox, "eth0", peer_mac=MAC["sbox_eth0"], mtu=MTU)
        ov1.enslave("veth0", "br0")
        sbox.addr("eth0", f"{ref.SBOX_INGRESS_IP}/16")
        self.state.add_container("fvlab-n1-sbox", "ingress-sbox", "ingress-sbox", ["docker_gwbridge", "ingress"])
        # ingress_sbox: mark the published port, balance fwmark 286 to the task, SNAT to 10.255.0.3
        for proto in ("tcp", "udp"):
            sbox.iptables("mangle", "PREROUTING", "-p", proto, "-m", proto, "--dport", str(PUBLISHED),
                          "-j", "MARK", "--set-xmark", f"{FWMARK:#x}/0xffffffff")
        self.state.ipvs = self._balance(sbox)
        # the task on node2: eth0 on the ingress overlay, eth2 on node2's docker_gwbridge
        task = self.task()
        ov2.veth("veth1", task, "eth0", peer_mac=MAC["task_eth0"], mtu=MTU)
        ov2.enslave("veth1", "br0")
        task.addr("eth0", f"{ref.TASK_IP}/16")
        n2 = self.gwbridge("node2", "02:42:e5:6e:d4:19")
        n2.veth("vethc0a30fb", task, "eth2", peer_mac="02:42:ac:12:00:09")
        n2.enslave("vethc0a30fb", "docker_gwbridge")
        task.addr("eth2", f"{ref.TASK_GW_IP}/16")
        task.default_route(ref.GWBRIDGE_IP)
        self.state.add_container("fvlab-n2-task", TASK_NAME, "overlay", ["ingress", "docker_gwbridge"])
        self.state.save()
        self.server("fvlab-n2-task", [PUBLISHED], TASK_NAME)
        return TARGETS["swarm-ingress"]

    def _balance(self, sbox: Ns) -> str:
        """fwmark 0x11e → 10.255.0.33 with SNAT to 10.255.0.3: real IPVS where the kernel has it."""
        if ipvs_available(sbox.name):
            from pyroute2 import IPVS, IPVSDest, IPVSService

            from ..netns import entered
            with entered(sbox.name):
                ipvs = IPVS()
            with ipvs:
                # the kernel takes a service only whole: netmask too (ip_vs_genl_parse_service)
                svc = IPVSService(fwmark=FWMARK, af=2, sched_name="rr", netmask="255.255.255.255")
                have = [s.get_nested("IPVS_CMD_ATTR_SERVICE", "IPVS_SVC_ATTR_FWMARK") for s in ipvs.service("dump")]
                if FWMARK not in have:
                    ipvs.service("add", service=svc)
                    ipvs.dest("add", service=svc, dest=IPVSDest(addr=ref.TASK_IP, port=0, fwd_method=0))
            sbox.sysctl("net.ipv4.vs.conntrack", "1")
            sbox.iptables("nat", "POSTROUTING", "-d", ref.INGRESS_NET, "-m", "ipvs", "--ipvs", "-j", "SNAT",
                          "--to-source", ref.SBOX_INGRESS_IP)
            return "kernel IPVS (FWM 286 rr, masquerade)"
        # Emulation for kernels without IPVS: the same mark, DNAT to the real server, SNAT
        sbox.iptables("nat", "PREROUTING", "-m", "mark", "--mark", f"{FWMARK:#x}", "-j", "DNAT",
                      "--to-destination", ref.TASK_IP)
        sbox.iptables("nat", "POSTROUTING", "-d", ref.INGRESS_NET, "-m", "mark", "--mark", f"{FWMARK:#x}",
                      "-j", "SNAT", "--to-source", ref.SBOX_INGRESS_IP)
        return "emulated: fwmark 0x11e + DNAT 10.255.0.33 + SNAT 10.255.0.3 (this kernel has no IPVS)"

    def user_overlay(self) -> Target:
        self.base()
        ov1 = self.overlay("node1", "n1-appnet", USER_OVERLAY_ID, "appnet", samples.USER_VNI)
        ov2 = self.overlay("node2", "n2-appnet", USER_OVERLAY_ID, "appnet", samples.USER_VNI)
        web = self.ns("fvlab-n1-web", "node1:web.1.x8k2m4n6p8q0", node="node1", role="container")
        ov1.veth("veth2", web, "eth0", peer_mac=MAC["taskA_eth0"], mtu=MTU)
        ov1.enslave("veth2", "br0")
        web.addr("eth0", "10.0.4.12/24")
        task = self.task()
        ov2.veth("veth3", task, "eth1", peer_mac=MAC["task_eth1"], mtu=MTU)
        ov2.enslave("veth3", "br0")
        task.addr("eth1", "10.0.4.19/24")
        self.state.add_container("fvlab-n1-web", "web.1.x8k2m4n6p8q0", "overlay", ["appnet"])
        self.state.add_container("fvlab-n2-task", TASK_NAME, "overlay", ["appnet"])
        self.state.save()
        self.server("fvlab-n2-task", [PUBLISHED], TASK_NAME)
        return TARGETS["overlay"]

    def docker0(self) -> Ns:
        n1 = self.ns("fvlab-node1", "node1")
        n1.bridge("docker0", mac=MAC["docker0"])
        n1.addr("docker0", "172.17.0.1/16")
        self.state.bridges["fvlab-node1/docker0"] = "bridge"
        n1.iptables("nat", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE")
        return n1

    def bridge(self) -> Target:
        self.base()
        n1 = self.docker0()
        for name, veth, ip, mac in (("web", "veth3f2a1b0", "172.17.0.2", MAC["web"]),
                                    ("db", "veth7c9d4e2", "172.17.0.3", MAC["db"])):
            c = self.ns(f"fvlab-{name}", f"node1:{name}", node="node1", role="container")
            n1.veth(veth, c, "eth0", peer_mac=mac)
            n1.enslave(veth, "docker0")
            c.addr("eth0", f"{ip}/16")
            c.default_route("172.17.0.1")
            self.state.add_container(f"fvlab-{name}", name, "bridge", ["bridge"])
        # -p 8080:80 on web, the way Docker writes it
        n1.iptables("nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
        n1.iptables("nat", "DOCKER", "!", "-i", "docker0", "-p", "tcp", "--dport", "8080", "-j", "DNAT",
                    "--to-destination", "172.17.0.2:80")
        n1.iptables("nat", "DOCKER", "!", "-i", "docker0", "-p", "udp", "--dport", "8080", "-j", "DNAT",
                    "--to-destination", "172.17.0.2:80")
        self.state.save()
        self.server("fvlab-web", [80], "web")
        return TARGETS["bridge"]

    def macvlan(self) -> Target:
        self.base()
        n1 = self.ns("fvlab-node1", "node1")
        for name, ip, mac in (("mv1", "192.168.21.50", MAC["mv1"]), ("mv2", "192.168.21.51", "02:42:c0:a8:15:33")):
            c = self.ns(f"fvlab-{name}", f"node1:{name}", node="node1", role="container")
            n1.macvlan("eth0", c, "eth0", mac=mac)
            c.addr("eth0", f"{ip}/24")
            self.state.add_container(f"fvlab-{name}", name, "macvlan", ["lan"])
        self.state.save()
        self.server("fvlab-mv1", [80], "mv1")
        return TARGETS["macvlan"]

    def host(self) -> Target:
        self.base()
        self.state.role("fvlab-node1", "node1")
        self.state.add_container("fvlab-node1", "hostweb", "host", ["host"])
        self.state.save()
        self.server("fvlab-node1", [8000], "hostweb")
        return TARGETS["host"]

    def none(self) -> Target:
        self.ns("fvlab-none", "node1:isolated", node="node1", role="container")
        self.state.add_container("fvlab-none", "isolated", "none", [])
        self.state.save()
        self.server("fvlab-none", [80], "isolated")
        return TARGETS["none"]

    def container(self) -> Target:
        self.base()
        n1 = self.docker0()
        app = self.ns("fvlab-app", "node1:app", node="node1", role="container")
        n1.veth("veth5e6f7a8", app, "eth0", peer_mac="02:42:ac:11:00:04")
        n1.enslave("veth5e6f7a8", "docker0")
        app.addr("eth0", "172.17.0.4/16")
        app.default_route("172.17.0.1")
        self.state.add_container("fvlab-app", "app", "bridge", ["bridge"])
        self.state.add_container("fvlab-app", "app-sidecar", "container:app", [])
        self.state.save()
        self.server("fvlab-app", [80], "app")
        return TARGETS["container"]


BUILDERS: dict[str, Callable[[Lab], Target]] = {
    "swarm-ingress": Lab.swarm_ingress,
    "overlay": Lab.user_overlay,
    "bridge": Lab.bridge,
    "macvlan": Lab.macvlan,
    "host": Lab.host,
    "none": Lab.none,
    "container": Lab.container,
}

#: each scenario's reference request: from which namespace, to where
TARGETS: dict[str, Target] = {
    "swarm-ingress": Target("fvlab-client", samples.NODE1_IP, PUBLISHED, "client → 192.168.21.192:20229 → task on node2"),
    "overlay": Target("fvlab-n1-web", "10.0.4.19", PUBLISHED, "web.1 (node1) → task on node2 over appnet (VNI 4097)"),
    "bridge": Target("fvlab-client", samples.NODE1_IP, 8080, "client → node1:8080 → web:80 on docker0"),
    "macvlan": Target("fvlab-client", "192.168.21.50", 80, "client → mv1 (macvlan on node1's eth0)"),
    "host": Target("fvlab-client", samples.NODE1_IP, 8000, "client → hostweb (--net=host on node1)"),
    "none": Target("fvlab-none", "127.0.0.1", 80, "isolated → itself over lo (--net=none)"),
    "container": Target("fvlab-app", "127.0.0.1", 80, "app-sidecar → app over lo (--net=container:app)"),
}


def ipvs_available(ns: str) -> bool:
    """Whether the kernel answers IPVS netlink requests (in that namespace)."""
    r = run_in(ns, "sh", "-c", "test -e /proc/net/ip_vs", check=False)
    return r.returncode == 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False
