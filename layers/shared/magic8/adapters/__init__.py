"""Adapters: implementations of magic8.domain ports on AWS (boto3) and other peers."""
