"""The local runtime (the embedded default): moto server + drivers for the real handlers."""
