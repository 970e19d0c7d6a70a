"""Pure domain code: no boto3, no environment. Talks to the outside only through ports."""
