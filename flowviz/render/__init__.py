"""Plain outputs of journeys: a text timeline and JSON Lines (the TUI is flowviz.tui)."""

from __future__ import annotations


from ..model import TCP, Frame, Journey, tcp_flags_text
from ..sanitize import safe  # noqa: F401  (re-exported: the outputs import it from here)


def tuple_fields(f: Frame) -> dict:
    return {"proto": f.proto, "src": f.src, "dst": f.dst, "sport": f.sport, "dport": f.dport}


def outer_text(f: Frame) -> str:
    return f.tuple_text()


def inner_text(f: Frame) -> str:
    return f.inner.innermost.tuple_text() if f.inner is not None else ""


def packet_label(j: Journey) -> str:
    """``tcp a:1 → b:2 SYN`` for the packet as its sender wrote it."""
    f = j.first.frame.innermost
    text = f.tuple_text()
    if type(f.l4) is TCP:
        text += " " + tcp_flags_text(f.l4.flags)
    return text


def role_text(j: Journey) -> str:
    if j.reply_to is not None:
        return f"reply to packet {j.reply_to}"
    return "reply" if j.direction == "reply" else "request"



