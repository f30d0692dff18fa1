"""Sample captures made by scripts/make-captures; shipped as package data."""
