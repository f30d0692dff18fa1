"""flowviz: follow one packet through a container host.

Live (eBPF via bcc, on tracepoints) or from captures (pcap/pcapng), through
one model: sources yield HopEvents, the correlator turns them into Journeys,
and the outputs (text, JSON Lines, pcapng, the TUI) draw them.
"""

__version__ = "0.1.0"
