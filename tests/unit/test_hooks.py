"""The optional hooks' userspace half: the note record mirrors bpf/fv_events.h, raw notes become
typed annotations, detection reads module symbols, and the correlator, the outputs and recordings
carry the annotations. (The kernel half runs in the stock-kernel stage: tests/privileged/test_stock.py.)"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
from importlib import resources

from flowviz.annotations import BridgeNote, IpvsNote, NatNote, Tuple5, VxlanNote, notes_decode, notes_encode
from flowviz.correlate import Correlator
from flowviz.model import ChangeKind as K, Endpoint, HopEvent
from flowviz.render.jsonl import hop_object
from flowviz.render.text import journey_lines
from flowviz.sources import hooks
from flowviz.sources.records import FV_EVENT

HEADER = (resources.files("flowviz.bpf") / "fv_events.h").read_text()
C_TYPES = {"__u64": "Q", "__u32": "I", "__u16": "H", "__u8": "B", "char": "s"}


def _c_struct(name: str) -> tuple[list[str], str]:
    body = re.search(r"struct " + name + r" \{(.*?)\};", HEADER, re.S).group(1)
    names, fmt = [], "<"
    for ctype, field, dims in re.findall(r"(__u64|__u32|__u16|__u8|char)\s+(\w+)((?:\[\w+\])*);", body):
        n = 1
        for d in re.findall(r"\[(\w+)\]", dims):
            n *= int(d)
        names.append(field)
        code = C_TYPES[ctype]
        fmt += f"{n}s" if code in "sB" and n > 1 else code * n
    return names, fmt


def test_note_mirror_matches_the_header():
    names, fmt = _c_struct("fv_note")
    assert tuple(names) == hooks.FV_NOTE_FIELDS
    assert struct.calcsize(fmt) == hooks.FV_NOTE.size
    pattern = bytes(range(256))[: hooks.FV_NOTE.size]
    assert struct.unpack(fmt, pattern) == hooks.FV_NOTE.unpack(pattern)


def test_note_constants_match_the_header():
    consts = {m[0]: int(m[1]) for m in re.findall(r"#define (FV_NOTE_\w+|FV_MAX_NOTES) (\d+)", HEADER)}
    assert consts == {"FV_MAX_NOTES": hooks.MAX_NOTES, "FV_NOTE_IPVS": hooks.NOTE_IPVS,
                      "FV_NOTE_VXLAN_TX": hooks.NOTE_VXLAN_TX, "FV_NOTE_VXLAN_RX": hooks.NOTE_VXLAN_RX,
                      "FV_NOTE_BRIDGE": hooks.NOTE_BRIDGE, "FV_NOTE_NAT": hooks.NOTE_NAT,
                      "FV_NOTE_F_NEW": hooks.F_NEW, "FV_NOTE_F_REPLY": hooks.F_REPLY,
                      "FV_NOTE_F_FLOOD": hooks.F_FLOOD, "FV_NOTE_F_DNAT": hooks.F_DNAT}
    # the event's C size (8-byte aligned) is where the notes start
    assert FV_EVENT.size % 8 == 0


def _v4(*addrs) -> bytes:
    return b"".join(ipaddress.IPv4Address(a).packed.ljust(16, b"\0") for a in addrs).ljust(64, b"\0")


def _raw(kind, flags=0, hook=0xFF, af=2, proto=6, num=0, ports=(0, 0, 0, 0), addrs=b"", names=b"", mac=b""):
    return hooks.FV_NOTE.pack(kind, flags, hook, af, proto, b"", num, *ports, addrs.ljust(64, b"\0"),
                              names.ljust(32, b"\0"), mac.ljust(8, b"\0"))


def test_raw_notes_become_typed_annotations():
    ipvs = hooks.convert_note(_raw(hooks.NOTE_IPVS, hooks.F_NEW, num=286, ports=(40001, 0, 20229, 0),
                                   addrs=_v4("172.18.0.1", "0.0.0.0", "10.255.0.33"), names=b"rr"))
    assert ipvs == IpvsNote(real="10.255.0.33", real_port=20229, vaddr=None, vport=0, fwmark=286, scheduler="rr",
                            new=True, client="172.18.0.1", cport=40001, proto=6, reply=False)
    assert ipvs.service() == "FWM 286"
    tx = hooks.convert_note(_raw(hooks.NOTE_VXLAN_TX, num=4096, ports=(4789, 0, 0, 0), addrs=_v4("192.168.21.193"),
                                 mac=bytes.fromhex("02420aff0021")))
    assert tx == VxlanNote("tx", 4096, "192.168.21.193", 4789, "02:42:0a:ff:00:21")
    assert hooks.convert_note(_raw(hooks.NOTE_BRIDGE, names=b"br0".ljust(16, b"\0") + b"veth1")) == \
        BridgeNote("br0", "veth1", False)
    assert hooks.convert_note(_raw(hooks.NOTE_BRIDGE, hooks.F_FLOOD, names=b"br0")) == BridgeNote("br0", None, True)
    nat = hooks.convert_note(_raw(hooks.NOTE_NAT, 0, hook=4, ports=(40001, 20229, 20229, 40001),
                                  addrs=_v4("172.18.0.1", "10.255.0.33", "10.255.0.33", "10.255.0.3")))
    assert nat.hook == "postrouting" and nat.manip == "snat"
    before, after = nat.before_after()
    assert before == Tuple5(6, "172.18.0.1", 40001, "10.255.0.33", 20229)
    assert after == Tuple5(6, "10.255.0.3", 40001, "10.255.0.33", 20229)
    assert hooks.convert_note(_raw(0)) is None   # an unknown kind is left out, not guessed


def test_an_event_with_notes_carries_them(tmp_path):
    from flowviz.sources.records import Records

    class Names:
        def label(self, inode):
            return "ns", None
    src = Records(0, Names(), {})   # what converts a live source's records: no kernel needed
    base = FV_EVENT.pack(1, 0xABC, 7, 2, 60, 0x11E, 0, 0, 0, 2, 1, 1, 0, b"", b"eth0", b"")
    note = _raw(hooks.NOTE_IPVS, num=286, addrs=_v4("1.1.1.1", "0.0.0.0", "10.255.0.33"), names=b"rr")
    ev = src.convert(base + note)
    assert ev.notes and ev.notes[0].real == "10.255.0.33"
    assert src.convert(FV_EVENT.pack(1, 0xABC, 7, 2, 60, 0, 0, 0, 0, 2, 1, 0, 0, b"", b"eth0", b"")).notes == ()


def test_kallsyms_functions_include_module_symbols(tmp_path):
    p = tmp_path / "kallsyms"
    p.write_text("ffffffff81000000 T _stext\n"
                 "ffffffffc0534240 t ip_vs_nat_xmit\t[ip_vs]\n"
                 "ffffffffc0573030 t vxlan_xmit\t[vxlan]\n"
                 "ffffffffc0579aa8 t vxlan_xmit.cold\t[vxlan]\n"
                 "ffffffff82000000 D some_data\n")
    funcs = hooks.kallsyms_functions(str(p))
    assert {"ip_vs_nat_xmit", "vxlan_xmit", "_stext"} <= funcs and "some_data" not in funcs


def test_without_kprobes_every_group_says_why(tmp_path):
    statuses = hooks.detect(str(tmp_path))   # a tracefs with no kprobe_events
    assert [s.group.name for s in statuses] == ["ipvs", "vxlan", "bridge", "nat"]
    assert all(not s.available and "CONFIG_KPROBES" in s.why for s in statuses)
    assert hooks.hook_cflags(statuses) == []


# --- the correlator and the outputs --------------------------------------------------------------

IPVS_NOTE = IpvsNote(real="10.255.0.33", real_port=20229, vaddr=None, vport=0, fwmark=286, scheduler="rr",
                     new=True, client="172.18.0.1", cport=40001, proto=6)
SNAT_NOTE = NatNote("postrouting", "snat", False, Tuple5(6, "172.18.0.1", 40001, "10.255.0.33", 20229),
                    Tuple5(6, "10.255.0.33", 20229, "10.255.0.3", 40001))


def _annotated_swarm_request():
    from flowviz.samples import swarm_ingress
    events = [HopEvent(ts_ns=1_000_000 + i * 1000, ifname=s.dev.name, dir=s.dir, data=s.frame, netns=s.dev.netns,
                       mark=s.mark) for i, s in enumerate(swarm_ingress()[0])]
    out = []
    for e in events:
        if e.netns.endswith("ingress_sbox") and e.ifname == "eth0" and e.dir == "tx":
            e = e._replace(notes=(IPVS_NOTE, SNAT_NOTE))
        out.append(e)
    return out


def test_the_ipvs_decision_is_its_own_change_kind():
    js = list(Correlator().run(_annotated_swarm_request()))
    assert len(js) == 1
    hop = next(h for h in js[0].hops if h.place.endswith("ingress_sbox/eth0"))
    kinds = hop.transition.kinds()
    assert K.IPVS in kinds and K.DNAT not in kinds and K.SNAT in kinds
    ipvs = next(c for c in hop.changes if c.kind is K.IPVS)
    assert ipvs.note == IPVS_NOTE
    assert (ipvs.before, ipvs.after) == (Endpoint("172.18.0.2", 20229), Endpoint("10.255.0.33", 20229))
    assert next(c for c in hop.changes if c.kind is K.SNAT).note == SNAT_NOTE
    # and the same sightings without notes stay a dnat
    plain = list(Correlator().run(sightings_plain()))[0]
    hop = next(h for h in plain.hops if h.place.endswith("ingress_sbox/eth0"))
    assert K.DNAT in hop.transition.kinds() and K.IPVS not in hop.transition.kinds()


def sightings_plain():
    return [e._replace(notes=()) for e in _annotated_swarm_request()]


def test_text_json_and_explain_show_the_notes():
    from flowviz.explain import explain
    j = list(Correlator().run(_annotated_swarm_request()))[0]
    text = "\n".join(journey_lines(j))
    assert "ipvs FWM 286 172.18.0.2:20229→10.255.0.33:20229" in text
    assert "↳ kernel: ipvs FWM 286 rr → real server 10.255.0.33:20229 (new connection, scheduled)" in text
    assert "↳ kernel: snat at postrouting: 172.18.0.1:40001 → 10.255.0.33:20229 ⇒ 10.255.0.3:40001 → " \
           "10.255.0.33:20229" in text
    hop = next(h for h in j.hops if h.place.endswith("ingress_sbox/eth0"))
    obj = json.loads(json.dumps(hop_object(j, hop)))
    assert obj["notes"][0]["kind"] == "ipvs" and obj["notes"][0]["real"] == "10.255.0.33"
    change = next(c for c in obj["changes"] if c["kind"] == "ipvs")
    assert change["note"]["fwmark"] == 286
    said = " ".join(explain(hop, j))
    assert "IPVS (FWM 286, scheduler rr) chose the real server 10.255.0.33" in said
    assert "mark 0x11e (= 286)" in said and "snat at postrouting" in said


def test_notes_survive_a_recording(tmp_path):
    from flowviz.render.pcapng import PcapngRecorder
    from flowviz.sources.replay import ReplaySource
    j = list(Correlator().run(_annotated_swarm_request()))[0]
    path = str(tmp_path / "rec.pcapng")
    rec = PcapngRecorder(path)
    rec.journey(j)
    rec.close()
    back = [e for e in ReplaySource([path]).events() if e is not None]
    noted = [e for e in back if e.notes]
    assert len(noted) == 1 and noted[0].notes == (IPVS_NOTE, SNAT_NOTE)


def test_the_notes_codec_rejects_what_it_does_not_know():
    assert notes_decode(notes_encode((IPVS_NOTE, VxlanNote("rx", 4096, "192.168.21.192", 4789)))) == \
        (IPVS_NOTE, VxlanNote("rx", 4096, "192.168.21.192", 4789))
    assert notes_decode("not json") == ()
    assert notes_decode('[{"kind": "evil"}, {"kind": "ipvs"}, 3]') == ()


def test_a_group_that_fails_to_attach_part_way_is_detached_and_named_right():
    class FakeBPF:
        def __init__(self):
            self.live = []

        def attach_kprobe(self, event, fn_name):
            self.live.append(event)

        def attach_kretprobe(self, event, fn_name, maxactive):
            if event == "ip_vs_schedule":
                raise Exception("refused")
            self.live.append(event)

        def detach_kprobe(self, event):
            self.live.remove(event)

        detach_kretprobe = detach_kprobe
    ipvs, bridge = hooks.GROUPS[0], hooks.GROUPS[2]
    bpf = FakeBPF()
    attached, problems = hooks.attach(bpf, [hooks.HookStatus(ipvs, True, ""), hooks.HookStatus(bridge, True, "")])
    assert attached == ["bridge"] and bpf.live == ["br_forward", "br_flood"]   # ipvs left nothing attached
    assert problems == ["ipvs: could not attach ip_vs_schedule: refused"]
