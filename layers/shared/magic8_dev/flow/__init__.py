"""Tooling around NQ options flow: the labelled-session generator and the replay CLI."""
