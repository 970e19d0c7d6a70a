"""DynamoMarketRepository against the real moto HTTP server; the seeder through it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from magic8.adapters.aws import client
from magic8.adapters.market_dynamo import DynamoMarketRepository
from magic8.domain import features as F
from magic8.domain.market import SNAPSHOT_BAR_WINDOW, Bar, MarketSnapshot
from magic8_dev.local.moto_server import EmbeddedAws
from magic8_dev.local.provision import LocalResources
from magic8_dev.ml import seed

pytestmark = pytest.mark.xdist_group("market_repo")


def _snap(symbol: str, last: float, updated: datetime, source: str = "gateway") -> MarketSnapshot:
    t0 = int(updated.timestamp()) - 300 * 3
    bars = tuple(
        Bar(ts=t0 + 300 * i, open=last, high=last + 1, low=last - 1, close=last, volume=10.0 * i)
        for i in range(3)
    )
    return MarketSnapshot(
        symbol=symbol,
        last=last,
        bid=last - 0.5,
        ask=last + 0.5,
        bars=bars,
        updated_at=updated,
        source=source,  # type: ignore[arg-type]
    )


def test_round_trip_and_documented_item_form(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table
    repo = DynamoMarketRepository(table)
    now = datetime.now(UTC).replace(microsecond=0)
    snap = _snap("SPX", 5850.25, now)
    repo.put_snapshot(snap, ttl_seconds=600)
    got = repo.get_snapshots(["SPX", "NDX", "SPX"])
    assert set(got) == {"SPX"}
    assert got["SPX"] == snap
    raw = client("dynamodb").get_item(TableName=table, Key={"symbol": {"S": "SPX"}})["Item"]
    assert set(raw) >= {
        "symbol",
        "last",
        "bid",
        "ask",
        "bars_json",
        "updated_at",
        "updated_ts",
        "source",
        "expires_at",
    }
    assert json.loads(raw["bars_json"]["S"])[1] == [
        snap.bars[1].ts,
        5850.25,
        5851.25,
        5849.25,
        5850.25,
        10.0,
    ]
    assert int(raw["expires_at"]["N"]) >= int(now.timestamp()) + 600
    assert raw["updated_at"]["S"] == now.isoformat()


def test_one_batch_get_for_many_symbols_and_expired_filtered(
    aws_resources: LocalResources,
) -> None:
    table = aws_resources.settings.market_table
    now = datetime.now(UTC)
    writer = DynamoMarketRepository(table)
    for i, sym in enumerate(("SPX", "SPY", "XSP", "NDX", "QQQ", "VIX")):
        writer.put_snapshot(_snap(sym, 100.0 + i, now), ttl_seconds=60)
    calls: list[dict[str, object]] = []
    ddb = client("dynamodb")

    class Counting:
        def batch_get_item(self, **kw: object) -> dict[str, object]:
            calls.append(kw)
            return ddb.batch_get_item(**kw)  # type: ignore[no-any-return]

    reader = DynamoMarketRepository(table, ddb=Counting())
    got = reader.get_snapshots(["SPX", "SPY", "XSP", "NDX", "QQQ", "VIX", "RUT"])
    assert len(calls) == 1
    assert set(got) == {"SPX", "SPY", "XSP", "NDX", "QQQ", "VIX"}
    # moto never expires TTL items: the adapter must hide them itself
    later = DynamoMarketRepository(table, clock=lambda: now.timestamp() + 120)
    assert later.get_snapshots(["SPX", "VIX"]) == {}


def test_seeded_snapshots_are_live_looking_and_feed_features(
    aws_resources: LocalResources,
) -> None:
    now = datetime.now(UTC)
    written = seed.seed_market(aws_resources.settings, now=now)
    repo = DynamoMarketRepository(aws_resources.settings.market_table)
    got = repo.get_snapshots([*seed.SEED_SYMBOLS, "VIX", "RUT"])
    assert set(got) == {*seed.SEED_SYMBOLS, "VIX"}  # RUT: no honest source
    for snap in written:
        stored = got[snap.symbol]
        assert stored.source == "seed"
        assert len(stored.bars) == SNAPSHOT_BAR_WINDOW
        assert abs(stored.bars[-1].ts + 300 - now.timestamp()) < 1.0  # latest bar ends now
        assert stored.age_seconds(now + timedelta(seconds=5)) == pytest.approx(5.0, abs=1.0)
    assert got["SPX"].last == pytest.approx(seed.REFERENCE_LEVELS["SPX"])
    ctx = F.market_context_from_snapshots(got["SPX"], got["VIX"])
    row = F.market_feature_vector(ctx)
    assert np.isfinite(row).all()


def test_seed_component_seeds_and_leaves_gateway_data_alone(
    moto_server: EmbeddedAws, aws_resources: LocalResources
) -> None:
    from magic8_dev.local.context import LocalContext
    from magic8_dev.local.seed_component import SeedMarketComponent

    repo = DynamoMarketRepository(aws_resources.settings.market_table)
    live = _snap("SPX", 6001.0, datetime.now(UTC))
    repo.put_snapshot(live, ttl_seconds=600)
    component = SeedMarketComponent(refresh_s=3600)
    assert component.name == "market"
    component.start(LocalContext(aws=moto_server, resources=aws_resources))
    try:
        got = repo.get_snapshots([*seed.SEED_SYMBOLS, "VIX"])
        assert got["SPX"] == live  # the gateway's snapshot is never overwritten
        assert {s for s, snap in got.items() if snap.source == "seed"} == {
            "SPY",
            "XSP",
            "NDX",
            "QQQ",
            "VIX",
        }
        status = component.status()
        assert "5 snapshots seeded" in status and "left to gateway: SPX" in status
    finally:
        component.stop()


def test_malformed_items_read_as_absent(aws_resources: LocalResources) -> None:
    table = aws_resources.settings.market_table
    ddb = client("dynamodb")
    ddb.put_item(TableName=table, Item={"symbol": {"S": "SPX"}, "last": {"N": "1"}})
    naive = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ddb.put_item(
        TableName=table,
        Item={
            "symbol": {"S": "NDX"},
            "last": {"N": "21000"},
            "bars_json": {"S": "[[1, 2, 3, 1, 2, 5]]"},
            "updated_at": {"S": naive.isoformat()},
            "source": {"S": "gateway"},
        },
    )
    got = DynamoMarketRepository(table).get_snapshots(["SPX", "NDX"])
    assert set(got) == {"NDX"}
    assert got["NDX"].updated_at.tzinfo is not None  # naive ISO read as UTC
    assert got["NDX"].bars[0].close == 2.0
