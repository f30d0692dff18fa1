"""The reference scenario's names, written once (DESIGN.md; ../shared/seed/docker-networking-notes.txt).

The lab builds these scenarios, the CLI offers them, the samples and the explanations speak
of them; each takes the names from here.
"""

#: the lab's scenarios, in the order the CLI lists them
SCENARIOS = ("swarm-ingress", "bridge", "overlay", "macvlan", "host", "none", "container")
