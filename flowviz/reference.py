"""The reference scenario's names, written once (DESIGN.md; ../shared/seed/docker-networking-notes.txt).

The lab builds these scenarios, the CLI offers them, the samples and the explanations speak
of them; each takes the names from here.
"""

#: the faults `flowviz lab break` makes in the swarm ingress path (flowviz.lab.faults); lessons name them
FAULTS = ("mtu", "fdb", "mark", "snat", "forward")

#: the lab's scenarios, in the order the CLI lists them
SCENARIOS = ("swarm-ingress", "bridge", "overlay", "macvlan", "host", "none", "container")

# --- the notes' swarm: node1 takes the published port, ingress_sbox balances it, the task on node2 answers
CLIENT_IP, NODE1_IP, NODE2_IP = "192.168.21.11", "192.168.21.192", "192.168.21.193"   # the underlay
GWBRIDGE_IP = "172.18.0.1"             #: docker_gwbridge on each node (172.18.0.0/16)
SBOX_GW_IP = "172.18.0.2"              #: ingress_sbox's leg on docker_gwbridge (eth1)
SBOX_INGRESS_IP = "10.255.0.3"         #: ingress_sbox's leg on the ingress overlay (eth0): the SNAT source
TASK_IP = "10.255.0.33"                #: the task's address on the ingress overlay: IPVS's real server
TASK_GW_IP = "172.18.0.9"              #: the task's leg on node2's docker_gwbridge (eth2)
INGRESS_NET = "10.255.0.0/16"
PUBLISHED_PORT = 20229
FWMARK = 0x11E                         #: 286: the mangle mark for the published port, and the IPVS service
INGRESS_VNI, USER_VNI = 4096, 4097
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50                    #: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
OVERLAY_MTU = 1500 - VXLAN_OVERHEAD    #: 1450
OVERLAY_NETNS = "1-mp3mrjuxu0"         #: the ingress network's overlay namespace (notes: 1-mp3mrjuxu0)
USER_OVERLAY_NETNS = "1-9a8b7c6d5e"
TASK = "my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b"   #: the task container's name in the notes
