"""Fault injection and the `magic8 resilience` suite (issue 8)."""
