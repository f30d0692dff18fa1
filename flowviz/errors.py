"""One error tree for everything a user can cause or lack.

The CLI catches :class:`FlowvizError` once, prints ``flowviz: <message>`` on
one line and exits with status 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class FlowvizError(Exception):
    """Base of every error that is the input's or the machine's fault."""

    exit_status = 2


class BadInput(FlowvizError):
    """A file, argument or value flowviz cannot use."""


class BadCapture(BadInput):
    """A capture file that cannot be read (past some point)."""

    def __init__(self, path: str, problem: str, *, partial: bool = False):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        #: True when packets before the problem were read and delivered.
        self.partial = partial


class NeedRoot(FlowvizError):
    """The command needs privileges the process does not have."""


class MissingFeature(FlowvizError):
    """The kernel or the machine lacks something the command needs."""


class LabError(FlowvizError):
    """The lab could not be built, used or removed."""
