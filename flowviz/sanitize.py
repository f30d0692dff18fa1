"""Text from outside (capture files, the kernel, netlink, Docker, /proc) on its way to a terminal.

Any string flowviz did not write itself can hold control characters; they are made visible
(``\\x1b``) instead of reaching the terminal. The lowest layer, so every output can use it.
"""

from __future__ import annotations

from typing import Optional

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def safe(text: Optional[str]) -> str:
    """Untrusted text (device, namespace, container names) with control characters made visible."""
    if text is None:
        return "-"
    return text.translate(_CONTROL)


def safe_lines(text: str) -> str:
    """Several lines of it (a lesson's text): each made safe, the line breaks kept."""
    return "\n".join(safe(line) for line in text.splitlines())
