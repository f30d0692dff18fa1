"""What the lab has built, and which Docker role each namespace plays.

Written to ``/run/flowviz/lab/state.json`` as the lab is built, so that
``down`` finds the servers it started, ``status`` knows the scenarios, and
topology and the UI label lab namespaces the way Docker's would be named
(``node1:ingress_sbox``, ``node2:1-mp3mrjuxu0``, a task's container name).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional
from ..paths import LAB_STATE_DIR as STATE_DIR, LAB_STATE_FILE as STATE_FILE



@dataclass
class Role:
    """The Docker part a lab namespace plays."""

    label: str                      #: display name: "node1:ingress_sbox"
    node: Optional[str] = None      #: which simulated host it belongs to
    role: str = "host"              #: host | client | underlay | ingress_sbox | overlay | container
    network: Optional[str] = None   #: for overlay namespaces: the Docker network it serves
    containers: list[dict] = field(default_factory=list)   #: [{"name", "mode", "networks"}]


@dataclass
class LabState:
    scenarios: list[str] = field(default_factory=list)
    ipvs: Optional[str] = None                    #: "kernel" or "emulated (fwmark + DNAT + SNAT)"
    namespaces: dict[str, Role] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)    #: "ns/device" → Docker network name
    servers: list[dict] = field(default_factory=list)        #: [{"pid", "netns", "ports"}]
    faults: dict[str, dict] = field(default_factory=dict)     #: `lab break` faults in place → how to undo each

    @classmethod
    def load(cls) -> "LabState":
        try:
            with open(STATE_FILE) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            return cls()
        st = cls(scenarios=raw.get("scenarios", []), ipvs=raw.get("ipvs"),
                 bridges=raw.get("bridges", {}), servers=raw.get("servers", []),
                 faults=raw.get("faults", {}))
        for ns, r in raw.get("namespaces", {}).items():
            st.namespaces[ns] = Role(**r)
        return st

    def save(self) -> None:
        os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
        tmp = STATE_FILE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, STATE_FILE)

    def role(self, ns: str, label: str, **kw) -> Role:
        r = self.namespaces.get(ns)
        if r is None:
            r = self.namespaces[ns] = Role(label, **kw)
        return r

    def add_container(self, ns: str, name: str, mode: str, networks: list[str]) -> None:
        r = self.namespaces[ns]
        if not any(c["name"] == name for c in r.containers):
            r.containers.append({"name": name, "mode": mode, "networks": networks})


def clear() -> None:
    for name in ("state.json", "state.json.tmp"):
        try:
            os.unlink(os.path.join(STATE_DIR, name))
        except FileNotFoundError:
            pass
