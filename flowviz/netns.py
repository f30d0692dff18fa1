"""Entering network namespaces from this thread, without forking.

pyroute2 0.9 opens a namespaced socket by forking a helper process; with other
netlink sockets open that fork hung the lab (the child shares the parent's
event-loop epoll set). Here the calling thread enters the namespace with
setns(2), makes its sockets there (a socket stays in the namespace it was made
in), and goes back. Used by the lab, lab traffic and topology.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager

from .paths import RUN_NETNS

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def inode_of(path: str):
    """The inode of a namespace file (``/run/netns/X``, ``/proc/PID/ns/net``), or None."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def ns_path(ns: str) -> str:
    """A namespace name (``/run/netns/NAME``), ``pid:N``, ``inode``-less path, or an absolute path."""
    if ns.startswith("/"):
        return ns
    if ns.startswith("pid:"):
        return f"/proc/{int(ns[4:])}/ns/net"
    return os.path.join(RUN_NETNS, ns)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns {what}: {os.strerror(err)}")


@contextmanager
def entered(ns: str):
    """Run the body with this thread inside network namespace ``ns``."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(ns_path(ns), os.O_RDONLY)
        try:
            _setns(target, ns)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, "back home")
    finally:
        os.close(home)


def iproute_in(ns: str):
    """A pyroute2 IPRoute socket inside ``ns`` (made there, used from here)."""
    from pyroute2 import IPRoute
    with entered(ns):
        return IPRoute()
