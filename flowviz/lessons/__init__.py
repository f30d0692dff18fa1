"""The lessons ``flowviz teach`` offers: one TOML file each (format: README.md here)."""
