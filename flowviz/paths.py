"""Where flowviz and the tools it reads keep things on a host: one place for every path.

Lower layers (topology, sources) read what higher ones (the lab) write through these
paths and the documents there, never by importing the writer.
"""

RUN_NETNS = "/run/netns"                      #: `ip netns add NAME` namespaces
DOCKER_NETNS = "/var/run/docker/netns"        #: Docker's sandboxes (ingress_sbox, 1-<id>, containers)
FLOWVIZ_RUN = "/run/flowviz"                  #: caches kept for one boot (BTF offsets)
LAB_STATE_DIR = "/run/flowviz/lab"
LAB_STATE_FILE = "/run/flowviz/lab/state.json"   #: what the lab built: roles by namespace name
