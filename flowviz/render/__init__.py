"""Plain outputs of journeys: a text timeline and JSON Lines (the TUI is flowviz.tui)."""

from __future__ import annotations

import os

from ..errors import BadInput
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





def new_file(path: str, option: str, what: str):
    """A new file of ours, mode 0600 whatever the umask, opened for writing in binary; an existing
    file is never overwritten (O_EXCL), and either problem is one line naming ``option``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{option} {path}: the file exists; flowviz does not overwrite {what}") from None
    except OSError as e:
        raise BadInput(f"{option} {path}: {e.strerror}") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")
