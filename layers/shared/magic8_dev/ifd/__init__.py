"""Tooling around IFD: offline evaluation on labelled sessions and in-memory ports."""
