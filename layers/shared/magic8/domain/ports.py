"""Ports: the interfaces domain code depends on. Adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from magic8.domain.alerts import Alert
from magic8.domain.flow import PressureWindow
from magic8.domain.market import MarketSnapshot


class MarketDataRepository(Protocol):
    def get_snapshots(self, symbols: Sequence[str]) -> dict[str, MarketSnapshot]:
        """One read for many symbols; missing symbols are absent from the result."""
        ...

    def put_snapshot(self, snapshot: MarketSnapshot, ttl_seconds: int = 3600) -> None: ...


class AlertPublisher(Protocol):
    def publish(self, alert: Alert) -> str | None:
        """Publish once; returns the message id."""
        ...


class FlowProducer(Protocol):
    def send(self, windows: Iterable[PressureWindow]) -> int:
        """Deliver windows to the flow stream; returns how many were accepted."""
        ...

    def flush(self) -> None: ...


class KeyValueState(Protocol):
    """Small mutable items in the state table, addressed by (pk, sk)."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None: ...

    def put(
        self, pk: str, sk: str, item: dict[str, Any], ttl_seconds: int | None = None
    ) -> None: ...

    def query(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]: ...

    def delete(self, pk: str, sk: str) -> None: ...
