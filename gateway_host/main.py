"""The gateway host (ECS Fargate, one task): `python -m gateway_host.main`.

Runs, in one asyncio loop: IbSession (quotes + 5-minute bars -> market snapshots),
DatabentoSession (NQ options MBO -> pressure windows -> Kinesis `flow`), the heartbeat
item in the state table, and HTTP /health for the container health check.

SIGTERM/SIGINT: stop the sessions, flush open windows and pending Kinesis records and
snapshots, write a final heartbeat, exit 0 (1 if the shutdown timed out).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway_host.health import HealthServer
from gateway_host.heartbeat import HeartbeatWriter
from gateway_host.ib.session import IbSession
from gateway_host.metrics import GatewayMetrics
from gateway_host.settings import GatewaySettings
from magic8.domain.heartbeat import GatewayHeartbeat
from magic8.domain.ports import MarketDataRepository
from magic8.market_hours import cme_globex_equity_open
from magic8.observability import quiet_third_party_loggers

log = logging.getLogger("magic8.gateway")

# a session that is reconnecting stays "healthy" for this long, so a short IB Gateway
# restart does not make ECS replace the task
UNHEALTHY_AFTER_S = 120.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _call(fn: Callable[[], Any]) -> Any:
    """Await a coroutine method; run a blocking one (thread joins, flushes) off the loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn()
    return await asyncio.to_thread(fn)


def spend_facts(spend: Any) -> dict[str, float | int | str | bool]:
    """The cost ledger's facts for the heartbeat (numbers, flags, the day); {} without one."""
    if not isinstance(spend, dict):
        return {}
    return {
        str(k): v
        for k, v in spend.items()
        if isinstance(v, bool | int | str) or (isinstance(v, float) and v == v)
    }


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        # epoch seconds or nanoseconds
        return datetime.fromtimestamp(value / 1e9 if value > 1e12 else value, UTC)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def default_market_repository(settings: GatewaySettings) -> MarketDataRepository:
    from magic8.adapters.market_dynamo import DynamoMarketRepository

    repo: MarketDataRepository = DynamoMarketRepository(settings.market_table)
    return repo


def default_databento_session(settings: GatewaySettings) -> Any:
    """The Databento half (gateway_host.databento.session), built from the settings."""
    from gateway_host.databento.session import from_settings

    return from_settings(settings)


class Gateway:
    """The sessions + heartbeat + health server, started and stopped together."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        market_repository: MarketDataRepository | None = None,
        databento_factory: Callable[[GatewaySettings], Any] = default_databento_session,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.ib: IbSession | None = None
        if settings.ib_enabled:
            repo = market_repository or default_market_repository(settings)
            self.ib = IbSession(settings.ib_config(), repo, clock=clock)
        self.databento: Any = databento_factory(settings) if settings.databento_enabled else None
        self.heartbeat = HeartbeatWriter(
            settings.state_table,
            self.collect_heartbeat,
            interval_s=settings.heartbeat_interval_s,
            ttl_seconds=settings.heartbeat_ttl_s,
        )
        self.health = HealthServer(self.status, settings.health_host, settings.health_port)
        self.metrics = GatewayMetrics(lambda: self.status()[1], settings.metrics_interval_s)
        self._last_ok: dict[str, float] = {}

    # ------------------------------------------------------------------ facts

    def _databento_facts(self) -> dict[str, Any]:
        db = self.databento
        if db is None:
            return {"state": "disabled", "healthy": True}
        facts = getattr(db, "health", None)
        out = facts() if callable(facts) else dict(facts or {})
        out.setdefault("state", str(getattr(db, "state", "unknown")))
        out.setdefault("healthy", bool(getattr(db, "healthy", False)))
        return dict(out)

    def _ib_facts(self) -> dict[str, Any]:
        if self.ib is None:
            return {"state": "disabled", "healthy": True}
        return self.ib.health()

    def _graced(self, name: str, healthy: bool) -> bool:
        """Healthy now, or healthy less than UNHEALTHY_AFTER_S ago (reconnecting)."""
        now = time.monotonic()
        if healthy:
            self._last_ok[name] = now
            return True
        last = self._last_ok.get(name)
        return last is not None and now - last < UNHEALTHY_AFTER_S

    def _databento_ok(self, facts: dict[str, Any]) -> bool:
        if facts.get("healthy"):
            return True
        # a connected live feed that is quiet while CME Globex is closed (daily halt,
        # weekend, holiday) is not a fault: restarting the task would not bring data
        return facts.get("state") == "streaming" and not cme_globex_equity_open(self.clock())

    def status(self) -> tuple[bool, dict[str, Any]]:
        """(healthy for the container check, facts). IB being unavailable (IB Gateway
        restarting, waiting for the second factor, IBKR maintenance) is reported as
        `degraded` but does not fail the check unless MAGIC8_IB_REQUIRED_FOR_HEALTH: a new
        task would not log in any sooner, it would only crash-loop."""
        ib, db = self._ib_facts(), self._databento_facts()
        ib_now = bool(ib.get("healthy")) if self.ib else True
        db_now = self._databento_ok(db) if self.databento else True
        ib_ok = self._graced("ib", ib_now) if self.ib else True
        db_ok = self._graced("databento", db_now) if self.databento else True
        degraded = [name for name, ok in (("ib", ib_now), ("databento", db_now)) if not ok]
        healthy = db_ok and (ib_ok or not self.settings.ib_required_for_health)
        return healthy, {"ib": ib, "databento": db, "degraded": degraded}

    def collect_heartbeat(self, final: bool = False) -> GatewayHeartbeat:
        healthy, facts = self.status()
        ib, db = facts["ib"], facts["databento"]
        pacing = {
            k: v for k, v in (ib.get("pacing") or {}).items() if isinstance(v, int | float | str)
        }
        return GatewayHeartbeat(
            updated_at=self.clock(),
            last_quote_at=_parse_time(ib.get("last_quote_at")),
            last_mbo_at=_parse_time(db.get("last_mbo_at")),
            ib_state=str(ib.get("state", "unknown")),
            databento_state=str(db.get("state", "unknown")),
            connections={"ib": str(ib.get("state")), "databento": str(db.get("state"))},
            pacing=pacing,
            backfill_budget_used=float(db.get("backfill_budget_used", 0.0) or 0.0),
            spend=spend_facts(db.get("spend")),
            healthy=healthy and not final,
            final=final,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.health.start()
        if self.ib is not None:
            await self.ib.start()
        if self.databento is not None:
            await _call(self.databento.start)
        await self.heartbeat.start()
        if self.settings.metrics_enabled:
            await self.metrics.start()
        log.info(
            "gateway started: ib=%s databento=%s health=:%d",
            "on" if self.ib else "off",
            self.settings.databento_mode if self.databento else "off",
            self.health.port,
        )

    async def shutdown(self) -> None:
        log.info("gateway stopping")
        if self.ib is not None:
            await self.ib.stop()  # cancels tasks, disconnects, flushes snapshots
        if self.databento is not None:
            await _call(self.databento.stop)  # ends the feed
            await _call(self.databento.flush)  # open windows + pending Kinesis records
        if self.settings.metrics_enabled:
            await self.metrics.stop()
        await self.heartbeat.stop(final=True)
        await self.health.stop()
        log.info("gateway stopped cleanly")


async def serve(settings: GatewaySettings, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(settings)
    await gateway.start()
    await stop.wait()
    try:
        await asyncio.wait_for(gateway.shutdown(), settings.shutdown_timeout_s)
    except TimeoutError:
        log.error("shutdown exceeded %.0fs", settings.shutdown_timeout_s)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = GatewaySettings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    quiet_third_party_loggers()  # no credential in any log at any level
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
