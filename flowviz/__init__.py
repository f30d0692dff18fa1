"""flowviz: follow one packet through a container host.

Live (eBPF via bcc, on tracepoints) or from captures (pcap/pcapng), through
one model: sources yield HopEvents, the correlator turns them into Journeys,
and the outputs (text, JSON Lines, pcapng, the TUI) draw them.
"""

__version__ = "0.1.0"

from . import native as _native

_native.install()   # a compiled module whose source changed since, or FLOWVIZ_PURE_PYTHON=1: its source
