"""Journeys as SVG for slides: the swarm ingress picture is a checked-in snapshot (look at it:
tests/unit/snapshots/swarm-ingress-journey.svg), and the writer never overwrites or leaves empty files."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from flowviz.correlate import Correlator
from flowviz.pipeline import collect
from flowviz.render.svg import journey_with_reply, journeys_svg, save_svg
from flowviz.sources.replay import ReplaySource
from support import flowviz, sample
from test_hostile import RAW_CONTROL, hostile_picture

SNAPSHOT = os.path.join(os.path.dirname(__file__), "snapshots", "swarm-ingress-journey.svg")
NS = "{http://www.w3.org/2000/svg}"


def journeys(name):
    src = ReplaySource([sample(name)])
    return collect(src, Correlator(topology=src.topology))


def swarm_svg() -> str:
    return journeys_svg(journey_with_reply(journeys("swarm-ingress.pcapng")))


def test_the_swarm_ingress_picture_is_the_snapshot():
    """FLOWVIZ_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change (then look at it)."""
    svg = swarm_svg()
    if os.environ.get("FLOWVIZ_UPDATE_SNAPSHOTS") == "1":
        with open(SNAPSHOT, "w") as f:
            f.write(svg)
    with open(SNAPSHOT) as f:
        assert svg == f.read()


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def test_the_picture_names_every_namespace_device_and_rewrite():
    words = texts(swarm_svg())
    for ns in ("client", "node1", "node2", "ingress_sbox", "1-mp3mrjuxu0", "host namespace"):
        assert ns in words
    for dev in ("eth0 tx", "docker_gwbridge tx", "eth1 rx", "vxlan0 tx", "br0 rx", "veth1 tx"):
        assert dev in words
    notes = [w for w in words if "dnat" in w or "encap" in w or "mark" in w]
    assert any("dnat 192.168.21.192:20229→172.18.0.2:20229" in w for w in notes)
    assert any("mark 0x0→0x11e" in w for w in notes)
    assert any("encap vni 4096: udp 192.168.21.192:51234 → 192.168.21.193:4789" in w for w in notes)
    assert any(w.startswith("packet 2 (reply to packet 1)") for w in words)


def test_the_tunnel_is_drawn_around_the_inner_packet():
    root = ET.fromstring(swarm_svg())
    rects = list(root.iter(f"{NS}rect"))
    bands = [r for r in rects if r.get("stroke-dasharray")]
    assert len(bands) == 2                                   # request and reply each cross it once
    wrappers = [r for r in rects if r.get("fill") == "#1f5fbf"]
    assert len(wrappers) == 4                                # eth0 on each node, each way: wrapped


def test_every_sample_draws_and_hostile_names_are_escaped(tmp_path):
    for name in ("bridge-published.pcapng", "overlay-east-west.pcapng", "macvlan.pcapng", "host-mode.pcapng",
                 "container-mode.pcapng", "none-mode.pcapng"):
        pair = journey_with_reply(journeys(name))
        words = set(texts(journeys_svg(pair)))
        assert {f"{h.event.ifname} {h.event.dir}" for j in pair for h in j.hops} <= words, name
    svg = hostile_picture(tmp_path, "--svg")
    ET.fromstring(svg)
    assert not RAW_CONTROL.search(svg.replace("\n", "")) and "\\x1b" in svg


def test_replay_svg_never_overwrites_and_leaves_nothing_when_nothing_matched(tmp_path):
    out = tmp_path / "j.svg"
    r = flowviz("replay", sample("swarm-ingress.pcapng"), "--json", "--svg", str(out))
    assert r.returncode == 0 and out.read_text() == swarm_svg()
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    r = flowviz("replay", sample("swarm-ingress.pcapng"), "--json", "--svg", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "exists" in r.stderr and r.stdout == ""
    none = tmp_path / "none.svg"
    r = flowviz("replay", sample("swarm-ingress.pcapng"), "--text", "--dport", "1", "--svg", str(none))
    assert r.returncode == 0 and not none.exists() and "no journey to draw" in r.stderr
    r = flowviz("replay", sample("swarm-ingress.pcapng"), "--svg", str(tmp_path / "no" / "dir.svg"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_save_svg_picks_a_free_name(tmp_path):
    pair = journey_with_reply(journeys("swarm-ingress.pcapng"))
    assert save_svg(pair, "flowviz-packet-1", str(tmp_path)).endswith("flowviz-packet-1.svg")
    assert save_svg(pair, "flowviz-packet-1", str(tmp_path)).endswith("flowviz-packet-1-2.svg")
