"""What every local component gets: the endpoint, the resources, the shared options."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import LocalResources


@dataclass
class LocalContext:
    aws: EmbeddedAws
    resources: LocalResources
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_key: str = "local-dev-key"
    demo: bool = True
    repo_root: Path = Path(".")
    stop_event: threading.Event = field(default_factory=threading.Event)
    # components publish URLs or facts for others (e.g. "api_url", "ws_url", "dashboard_url")
    facts: dict[str, str] = field(default_factory=dict)
    # components publish live counters for others (e.g. "ifd_polled": records read)
    counters: dict[str, Callable[[], int]] = field(default_factory=dict)


class Component(Protocol):
    """A piece of the local stack that drives real handlers (moto runs no Lambda code)."""

    name: str

    def start(self, ctx: LocalContext) -> None: ...

    def status(self) -> str:
        """One short status line."""
        ...

    def stop(self) -> None: ...
