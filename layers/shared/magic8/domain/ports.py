"""Ports: the interfaces domain code depends on. Adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from magic8.domain.alerts import Alert
from magic8.domain.confidence import ConfidencePoint, Trend
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


class HistoryRepository(Protocol):
    """Confidence history per "<SYMBOL>#<Strategy>" series (magic8.domain.confidence)."""

    def record(self, points: Sequence[ConfidencePoint]) -> int:
        """Write ConfidencePoints in batches; returns how many were written."""
        ...

    def query(self, series: str, start_ms: int, end_ms: int) -> list[ConfidencePoint]:
        """ConfidencePoints of one series with start_ms <= ts <= end_ms, oldest first."""
        ...

    def trends(self, hours: float, now_ms: int, series: Sequence[str] | None = None) -> list[Trend]:
        """One Trend per series with data: latest point vs the latest point <= now - hours."""
        ...
