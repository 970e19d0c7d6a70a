"""Workstation tooling for magic8: the local runtime (`make run`), benchmarks, the fault
harness, training and data generation, IFD evaluation, the CLI and the dashboard's assets.

Never installed in an image: the Lambda functions and the gateway host carry only the
runtime package `magic8`. Imports point one way: magic8_dev -> functions, gateway_host, magic8.
"""
