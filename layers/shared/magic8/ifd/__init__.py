"""Institutional flow detection (IFD): baselines, analysis, signals — pure domain code."""
