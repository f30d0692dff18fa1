"""Strings from capture files never reach a terminal as control characters (#14): interface names,
packet comments and the dir they claim, through text, JSON and the error line."""

from __future__ import annotations

import json
import re

from flowviz.model import LINKTYPE_ETHERNET
from flowviz.pcapfile import PcapNgWriter
from flowviz.samples import tcp_frame
from support import flowviz

HOSTILE = "eth0\n\x1b]0;owned\x07\x1b[2J\x9b31m\x7f"
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")   # tabs and newlines are the output's own


def hostile_capture(path, linktype=LINKTYPE_ETHERNET):
    with open(path, "wb") as f:
        w = PcapNgWriter(f, app="test")
        idx = w.interface(f"ns\x1b[1m/{HOSTILE}", linktype, f"netns=evil\x1b[2J")
        frame = tcp_frame("02:00:00:00:00:0a", "02:00:00:00:00:0b", "10.0.0.1", "10.0.0.2", 4000, 80, ip_id=3)
        w.packet(idx, 1_000_000_000, frame, direction="tx",
                 comment=f"flowviz: dir=\x1b[31mrx\x9b hook=\x1b]0;x\x07 skb=0x1\nnote \x1b[2J")


def hostile_picture(tmp_path, option: str) -> str:
    """The hostile capture drawn by ``replay --svg`` or ``--html``: the file's text."""
    cap = tmp_path / "hostile.pcapng"
    hostile_capture(cap)
    out = tmp_path / f"picture.{option.lstrip('-')}"
    r = flowviz("replay", str(cap), "--text", option, str(out))
    assert r.returncode == 0, r.stderr
    return out.read_text()


def test_text_and_json_carry_no_control_characters(tmp_path):
    cap = tmp_path / "hostile.pcapng"
    hostile_capture(cap)
    text = flowviz("replay", str(cap), "--text")
    assert text.returncode == 0 and not RAW_CONTROL.search(text.stdout), repr(text.stdout)
    assert "\\x1b" in text.stdout                   # shown, made visible
    assert " tx " in text.stdout                    # the unknown dir= claim was not believed
    out = flowviz("replay", str(cap), "--json")
    assert out.returncode == 0 and not RAW_CONTROL.search(out.stdout.replace("\n", "")), repr(out.stdout)
    hops = [json.loads(l) for l in out.stdout.splitlines() if '"type": "hop"' in l]
    assert hops and hops[0]["dir"] == "tx" and "\x1b" in hops[0]["ifname"]   # JSON keeps the value, escaped
    assert hops[0]["hook"] == "unknown"   # nor the hook= claim, which names no tracepoint


def test_the_live_tracer_s_hooks_are_the_ones_a_recording_may_name():
    from flowviz.model import HOOK_NAMES
    from flowviz.sources.records import HOOKS
    # netif_rx: not attached any more, and named by recordings made before that
    assert {name for name, _ in HOOKS.values()} | {"capture", "netif_rx"} == HOOK_NAMES


def test_an_error_naming_a_hostile_interface_is_one_clean_line(tmp_path):
    cap = tmp_path / "badlink.pcapng"
    hostile_capture(cap, linktype=147)   # a link type flowviz cannot decode
    r = flowviz("replay", str(cap), "--json")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and not RAW_CONTROL.search(r.stderr.strip()), repr(r.stderr)
