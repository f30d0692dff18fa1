"""eBPF C and the shim include tree bcc compiles it against; shipped as package data."""
