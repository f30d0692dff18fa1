"""Changes for people and for JSON: the one place a :class:`Change`'s values become text.

The correlator keeps values (endpoints, flows, TTLs, marks); text output, JSON Lines, the TUI
and the explanations all format them here, so each looks the same everywhere.
"""

from __future__ import annotations

from typing import Final, Optional

from ..model import Change, ChangeKind, Endpoint, Flow, endpoint, flow_text, namedtuple_json

K: Final = ChangeKind
#: each kind's text (Enum's ``.value`` is Python code, a call into the interpreter per change)
KIND_TEXT: Final = {k: k.value for k in ChangeKind}


def side_text(c: Change, after: bool) -> Optional[str]:
    """``before`` or ``after`` of a change as text (None when there is none)."""
    v = c.after if after else c.before
    if v is None:
        return None
    if c.kind is K.MARK:
        return hex(v)  # type: ignore[arg-type]
    if c.kind is K.ROUTE:
        return f"ttl {v}"
    if isinstance(v, Endpoint):
        return endpoint(v.addr, v.port)
    if isinstance(v, Flow):
        text = flow_text(*v)
        outer = after if c.kind is K.ENCAP else not after   # the tunnel side carries the VNI
        return f"{text} vni {c.vni}" if outer and c.kind in (K.ENCAP, K.DECAP) else text
    return str(v)


def before_text(c: Change) -> Optional[str]:
    return side_text(c, False)


def after_text(c: Change) -> Optional[str]:
    return side_text(c, True)


def change_text(c: Change) -> str:
    """Short text for a timeline row (the row already names the device)."""
    k = c.kind
    if k is K.DROP:
        return f"drop {c.reason or ''}".rstrip()
    if k is K.VETH:
        return "veth"
    if k is K.BRIDGE:
        return f"bridge {c.via}" if c.via else "bridge"
    if k is K.ROUTE:
        return f"route ttl {c.before}→{c.after}"
    if k is K.ENCAP or k is K.DECAP:
        return f"{KIND_TEXT[k]} vni {c.vni}"
    if k is K.DELIVER:
        return f"deliver {after_text(c)}"
    if k is K.IPVS and c.note is not None:
        if c.note.reply:  # type: ignore[attr-defined]
            return f"ipvs {before_text(c)}→{after_text(c)} (reply)"
        return f"ipvs {c.note.service()} {before_text(c) or '?'}→{after_text(c)}"  # type: ignore[attr-defined]
    return f"{KIND_TEXT[k]} {before_text(c)}→{after_text(c)}"


def changes_text(hop, none: str = "") -> str:
    """A hop's changes on one line (``none`` when it has none: its first sighting)."""
    return ", ".join(change_text(c) for c in hop.changes) or none


def change_json(c: Change) -> dict:
    d: dict = {"kind": KIND_TEXT[c.kind], "from": before_text(c), "to": after_text(c)}
    if c.vni is not None:
        d["vni"] = c.vni
    if c.reason is not None:
        d["reason"] = c.reason
    if c.via is not None:
        d["via"] = c.via
    if c.note is not None:
        d["note"] = namedtuple_json(c.note)
    return d
