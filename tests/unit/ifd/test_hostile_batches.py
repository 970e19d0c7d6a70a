"""The ifd batch use case cannot be taken down by a record (issue 16).

Hostile batches (hypothesis): good windows mixed with out-of-range numbers (strike 1e308 /
1e-200, 1e12 contracts), unrepresentable or implausible dates (year 1 at +14:00, 9999 at
-12:00, 1900), naive and aware timestamps mixed, wrong types, broken JSON. Properties: no
exception escapes process_flow_batch, exactly the bad records are batch item failures,
the window-store cache holds at most two slots per window in the batch, and memory stays
bounded. The stores are the DynamoDB adapters over an in-memory table that applies
DynamoDB's number rules (TypeSerializer), so a Decimal overflow would surface here.
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magic8.adapters.dynamo_state import (
    DynamoBaselineStore,
    DynamoWindowStore,
    from_dynamo,
    to_dynamo,
)
from magic8.domain.flow import PressureWindow
from magic8.ifd.batch import FlowBatchDeps, process_flow_batch
from magic8.ifd.detector import IfdDetector
from magic8.ifd.values import DispatchResult, Signal
from tests.factories import LambdaContext, kinesis_record, session_start, window

_SER = TypeSerializer()


class TableLikeState:
    """KeyValueState in a dict that serialises every item as boto3 would for DynamoDB
    (numbers outside 1e-130..1e125 or over 38 digits raise, as they do in production)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.queries = 0

    def _store(self, pk: str, sk: str, item: dict[str, Any]) -> None:
        full = {**to_dynamo(item), "pk": pk, "sk": sk}
        _SER.serialize(full)  # raises like the real client on an unstorable number
        self.items[(pk, sk)] = full

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.items.get((pk, sk))
        return None if item is None else from_dynamo(item)

    def put(self, pk: str, sk: str, item: dict[str, Any], ttl_seconds: int | None = None) -> None:
        self._store(pk, sk, item)

    def put_many(self, items: Any, ttl_seconds: int | None = None) -> None:
        for pk, sk, item in items:
            self._store(pk, sk, item)

    def get_many(self, keys: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {k: from_dynamo(self.items[k]) for k in keys if k in self.items}

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[dict[str, Any]]:
        self.queries += 1
        return [
            from_dynamo(v)
            for (p, s), v in sorted(self.items.items())
            if p == pk and sk_from <= s <= sk_to
        ]


class SerialisingSignalStore:
    def __init__(self) -> None:
        self.items: dict[str, Signal] = {}

    def put(self, signal: Signal) -> None:
        _SER.serialize(to_dynamo(signal.model_dump(mode="json")))
        self.items[signal.signal_id] = signal

    def query(self, *args: Any, **kwargs: Any) -> list[Signal]:
        return list(self.items.values())


class Quiet:
    def add_metric(self, **kwargs: Any) -> None: ...
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...


def _record(payload: bytes, seq: int) -> dict[str, Any]:
    return kinesis_record(payload, seq)


class Rig:
    def __init__(self) -> None:
        self.state = TableLikeState()
        self.window_stores: list[DynamoWindowStore] = []
        self.signals = SerialisingSignalStore()

    def new_detector(self) -> IfdDetector:
        store = DynamoWindowStore(self.state)  # type: ignore[arg-type]
        self.window_stores.append(store)
        return IfdDetector(
            baselines=DynamoBaselineStore(self.state),  # type: ignore[arg-type]
            windows=store,
            signals=self.signals,
            dispatch=lambda s: DispatchResult("sent", "m-1"),
        )

    def run(self, payloads: list[bytes]) -> dict[str, Any]:
        event = {"Records": [_record(p, i + 1) for i, p in enumerate(payloads)]}
        deps = FlowBatchDeps(self.new_detector, None, Quiet(), Quiet())
        return process_flow_batch(event, LambdaContext(), deps)


BASE = session_start("2025-09-15")

# field -> hostile values (JSON-encodable); each makes the record malformed
HOSTILE: dict[str, list[Any]] = {
    "strike": [1e308, 1e-200, -5.0, 0.0, True, "x", 1e9],
    "bid_volume": [1e12, 1e-200, 1e308, -1.0, True],
    "ask_volume": [1e13, 1e-300],
    "largest_trade": [1e9, 1e200],
    "avg_trade_size": [1e-200],
    "notional_premium": [1e308, 1e-250],
    "total_trades": [2**70, -1],
    "instrument_id": [-1, 2**80],
    "first_sequence": [2**65],
    "window_start": [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "1900-01-01T00:00:00+00:00",
        "2200-01-01T00:00:00+00:00",
        "not a time",
    ],
    "window_end": ["9999-12-31T23:59:59-12:00", "2025-09-16T13:30:00+00:00"],
    "schema_version": [99],
    "underlying": ["", "x" * 100],
}


def _good(i: int, naive: bool = False) -> dict[str, Any]:
    w = window(20000 + 25 * (i % 8), "C" if i % 2 else "P", BASE + timedelta(minutes=5 * (i % 6)),
               ask=float(5 + i % 7), bid=float(3 + i % 5))  # fmt: skip
    out = w.model_dump(mode="json")
    if naive:  # a naive time is read as UTC: the record is good, and mixes with aware ones
        out["window_start"] = out["window_start"].replace("Z", "").replace("+00:00", "")
        out["window_end"] = out["window_end"].replace("Z", "").replace("+00:00", "")
    return out


@st.composite
def hostile_batches(draw: st.DrawFn) -> tuple[list[bytes], set[int]]:
    n = draw(st.integers(1, 40))
    payloads: list[bytes] = []
    bad: set[int] = set()
    for i in range(n):
        kind = draw(st.sampled_from(["good", "naive", "hostile", "hostile", "garbage"]))
        if kind == "garbage":
            payloads.append(draw(st.sampled_from([b"{", b"[]", b"null", b"\xff\xfe", b"{}"])))
            bad.add(i)
            continue
        body = _good(i, naive=kind == "naive")
        if kind == "hostile":
            field = draw(st.sampled_from(sorted(HOSTILE)))
            body[field] = draw(st.sampled_from(HOSTILE[field]))
            bad.add(i)
        payloads.append(json.dumps(body).encode())
    return payloads, bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=hostile_batches())
def test_hostile_batches_fail_only_their_bad_records(batch: tuple[list[bytes], set[int]]) -> None:
    payloads, bad = batch
    rig = Rig()
    tracemalloc.start()
    try:
        response = rig.run(payloads)  # no exception escapes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failed = {int(f["itemIdentifier"]) - 1 for f in response["batchItemFailures"]}
    assert failed == bad
    # bounded: two cache slots per window at most, a few MB at most
    slots = sum(len(s._cache) for s in rig.window_stores)
    assert slots <= 2 * len(payloads)
    assert peak < 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in HOSTILE.items() for v in values]
)
def test_every_hostile_value_is_a_malformed_record(field: str, value: Any) -> None:
    body = dict(_good(1), **{field: value})
    with pytest.raises(ValueError):
        PressureWindow.model_validate_json(json.dumps(body))
    response = Rig().run([json.dumps(_good(0)).encode(), json.dumps(body).encode()])
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [f"{2:056d}"]


def test_naive_and_aware_windows_mix_in_one_batch() -> None:
    response = Rig().run([json.dumps(_good(0)).encode(), json.dumps(_good(1, True)).encode()])
    assert response["batchItemFailures"] == []


def test_prefetch_is_bounded_by_the_windows_not_the_span_between_them() -> None:
    """Two plausible windows 25 years apart: two slots, two Queries (was one slot per five
    minutes between them: 2.6 M slots)."""
    rig = Rig()
    far = datetime(2001, 1, 2, 15, 0, tzinfo=UTC)
    old = _good(0)
    old["window_start"] = far.isoformat()
    old["window_end"] = (far + timedelta(minutes=5)).isoformat()
    response = rig.run([json.dumps(_good(1)).encode(), json.dumps(old).encode()])
    assert response["batchItemFailures"] == []
    (store,) = rig.window_stores
    assert len(store._cache) == 4  # each window's slot and the one before it
    assert rig.state.queries == 2  # one per (underlying, trading day)


def test_a_window_the_store_refuses_fails_alone() -> None:
    """If the store raises for one window (observe), only that record fails."""
    rig = Rig()
    orig = rig.state._store

    def picky(pk: str, sk: str, item: dict[str, Any]) -> None:
        if "20050" in sk:
            raise ValueError("refused")
        orig(pk, sk, item)

    rig.state._store = picky  # type: ignore[method-assign]
    ok, refused = _good(0), _good(2)  # strikes 20000 and 20050
    response = rig.run([json.dumps(ok).encode(), json.dumps(refused).encode()])
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [f"{2:056d}"]
