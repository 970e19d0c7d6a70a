"""The monitoring sweep: watchlist, crossing alerts, stale-gateway checks, accuracy, drift, push.

Pure domain code (no boto3, no environment): everything outside comes in through ports.
"""
