"""DynamoDB adapters on the STATE table: generic KeyValueState, IFD baselines, peers, rate cap.

Items are addressed by (pk, sk). TTL (``expires_at``, epoch seconds) is stored for
DynamoDB to expire; reads filter expired items themselves (moto never expires, and AWS
deletes lazily). Floats go in as Decimal and come back as int/float.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from magic8.adapters.aws import LazyDynamoTable
from magic8.domain.flow import PressureWindow
from magic8.ifd.baselines import Baseline, trading_day
from magic8.ifd.values import OptionState, WindowLite

TTL_ATTRIBUTE = "expires_at"


def to_dynamo(value: Any) -> Any:
    """Python -> DynamoDB: floats become Decimal (recursively); None values are dropped."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """DynamoDB -> Python: Decimal becomes int when integral, else float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def conditional_update(table: Any, **update: Any) -> bool:
    """UpdateItem with a ConditionExpression: True when applied, False when the condition
    did not hold (the caller's limit was reached); any other error propagates."""
    try:
        table.update_item(**update)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def expired(item: dict[str, Any], now: float | None = None) -> bool:
    exp = item.get(TTL_ATTRIBUTE)
    return exp is not None and float(exp) <= (now if now is not None else time.time())


class DynamoKeyValueState(LazyDynamoTable):
    """KeyValueState (magic8.domain.ports) over a table with string keys pk/sk."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": pk, "sk": sk}).get("Item")
        if item is None or expired(item):
            return None
        out: dict[str, Any] = from_dynamo(item)
        return out

    def put(self, pk: str, sk: str, item: dict[str, Any], ttl_seconds: int | None = None) -> None:
        self.table.put_item(Item=self._item(pk, sk, item, ttl_seconds))

    def put_many(
        self, items: Iterable[tuple[str, str, dict[str, Any]]], ttl_seconds: int | None = None
    ) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for pk, sk, item in items:
                batch.put_item(Item=self._item(pk, sk, item, ttl_seconds))

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """BatchGetItem in chunks of 100 (unprocessed keys retried); missing keys are absent."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        dynamo = self.table.meta.client
        now = time.time()
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table_name: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in unique[i : i + 100]]}
            }
            for _attempt in range(10):
                resp = dynamo.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table_name, []):
                    if not expired(item, now):
                        out[(item["pk"], item["sk"])] = from_dynamo(item)
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05)
        return out

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[dict[str, Any]]:
        """Items of ``pk`` with sk between the bounds (inclusive), strongly consistent."""
        return self._query(Key("pk").eq(pk) & Key("sk").between(sk_from, sk_to), True)

    def query(self, pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        cond: Any = Key("pk").eq(pk)
        if sk_prefix:
            cond = cond & Key("sk").begins_with(sk_prefix)
        return self._query(cond)

    def _query(self, cond: Any, consistent: bool = False) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": cond, "ConsistentRead": consistent}
        out: list[dict[str, Any]] = []
        now = time.time()
        while True:
            page = self.table.query(**kwargs)
            out.extend(from_dynamo(i) for i in page.get("Items", []) if not expired(i, now))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(self, pk: str, sk: str) -> None:
        self.table.delete_item(Key={"pk": pk, "sk": sk})

    @staticmethod
    def _item(pk: str, sk: str, item: dict[str, Any], ttl_seconds: int | None) -> dict[str, Any]:
        full = {**to_dynamo(item), "pk": pk, "sk": sk}
        if ttl_seconds:
            full[TTL_ATTRIBUTE] = int(time.time()) + int(ttl_seconds)
        return full


def _strike(strike: float) -> str:
    return f"{strike:g}"


class DynamoBaselineStore:
    """BaselineStore (magic8.ifd.ports) on KeyValueState, write-behind per batch.

    Option state: pk ``ifd#opt#<underlying>``, sk ``<C|P>#<strike>``; priors: pk
    ``ifd#prior#<underlying>``, sk ``<C|P>``. Baselines are stored as compact JSON.
    Build one per invocation: ``prefetch`` reads the batch's option states with
    BatchGetItem, ``save_*`` update the in-memory copy, ``flush`` writes what changed with
    one batch writer. Losing a flush (crash) only means the batch is recomputed on retry
    (alerts are idempotent, signal puts overwrite). One Kinesis shard -> one writer per key.
    """

    def __init__(self, state: DynamoKeyValueState, ttl_seconds: int = 60 * 86400) -> None:
        self.state = state
        self.ttl_seconds = ttl_seconds
        self._options: dict[tuple[str, str], OptionState | None] = {}
        self._priors: dict[tuple[str, str], Baseline | None] = {}
        self._dirty: set[tuple[str, str]] = set()

    @staticmethod
    def _option_key(underlying: str, option_type: str, strike: float) -> tuple[str, str]:
        return f"ifd#opt#{underlying}", f"{option_type}#{_strike(strike)}"

    def prefetch(self, keys: Sequence[tuple[str, str, float]]) -> None:
        wanted = [self._option_key(*k) for k in keys]
        wanted = [k for k in wanted if k not in self._options]
        if not wanted:
            return
        found = self.state.get_many(wanted)
        for k in wanted:
            item = found.get(k)
            self._options[k] = OptionState.from_item(item) if item else None

    def load_option(self, underlying: str, option_type: str, strike: float) -> OptionState | None:
        key = self._option_key(underlying, option_type, strike)
        if key not in self._options:
            item = self.state.get(*key)
            self._options[key] = OptionState.from_item(item) if item else None
        return self._options[key]

    def save_option(self, state: OptionState) -> None:
        key = self._option_key(state.underlying, state.option_type, state.strike)
        self._options[key] = state
        self._dirty.add(key)

    def load_prior(self, underlying: str, option_type: str) -> Baseline | None:
        key = (f"ifd#prior#{underlying}", option_type)
        if key not in self._priors:
            item = self.state.get(*key)
            self._priors[key] = Baseline.from_json(item.get("baseline")) if item else None
        return self._priors[key]

    def save_prior(self, underlying: str, option_type: str, baseline: Baseline) -> None:
        key = (f"ifd#prior#{underlying}", option_type)
        self._priors[key] = baseline
        self._dirty.add(key)

    def flush(self) -> None:
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for key in sorted(self._dirty):
            if key[0].startswith("ifd#opt#"):
                state = self._options.get(key)
                if state is not None:
                    rows.append((key[0], key[1], state.to_item()))
            else:
                prior = self._priors.get(key)
                if prior is not None:
                    rows.append((key[0], key[1], {"baseline": prior.to_json()}))
        if rows:
            self.state.put_many(rows, ttl_seconds=self.ttl_seconds)
        self._dirty.clear()


class DynamoWindowStore:
    """WindowStore: pk ``ifd#win#<underlying>#<trading day>``, sk ``<ws epoch>#<C|P>#<strike>``.

    One partition per underlying and day, sorted by window start, so a batch's peers (all
    window starts it touches, and the one before each) come back in one Query per day.
    Build one per invocation: ``prefetch`` loads the range before the batch's own windows
    are put (``put_many`` adds them to the cache), so reads never depend on consistency.
    """

    def __init__(self, state: DynamoKeyValueState, ttl_seconds: int = 2 * 86400) -> None:
        self.state = state
        self.ttl_seconds = ttl_seconds
        self._cache: dict[tuple[str, int], dict[str, WindowLite]] = {}

    @staticmethod
    def _pk(underlying: str, ws: int) -> str:
        return f"ifd#win#{underlying}#{trading_day(datetime.fromtimestamp(ws, UTC))}"

    def prefetch(self, underlying: str, starts: Sequence[datetime]) -> None:
        """One cache slot per window start asked for and one Query per (underlying, trading
        day) they fall on, over that day's requested span only: bounded by the batch's
        windows, never by the distance between them."""
        asked = {int(t.timestamp()) for t in starts}
        missing = sorted(ws for ws in asked if (underlying, ws) not in self._cache)
        if not missing:
            return
        by_pk: dict[str, list[int]] = {}
        for ws in missing:
            self._cache[(underlying, ws)] = {}
            by_pk.setdefault(self._pk(underlying, ws), []).append(ws)
        for pk, slots in sorted(by_pk.items()):
            wanted = set(slots)
            lo, hi = min(slots), max(slots)
            for item in self.state.query_range(pk, f"{lo:010d}#", f"{hi:010d}#~"):
                ws_text, sk = str(item["sk"]).split("#", 1)
                if int(ws_text) not in wanted:
                    continue
                slot = self._cache.setdefault((underlying, int(ws_text)), {})
                slot.setdefault(
                    sk, WindowLite.from_list(sk.split("#", 1)[0], json.loads(item["w"]))
                )

    def put_many(
        self, windows: Sequence[PressureWindow], volume_z: Mapping[str, float] | None = None
    ) -> None:
        rows = []
        for w in windows:
            lite = WindowLite.of(w, (volume_z or {}).get(w.window_key, 0.0))
            sk = f"{lite.option_type}#{_strike(lite.strike)}"
            rows.append(
                (
                    self._pk(w.underlying, lite.ws),
                    f"{lite.ws:010d}#{sk}",
                    {"w": json.dumps(lite.to_list())},
                )
            )
            self._cache.setdefault((w.underlying, lite.ws), {})[sk] = lite
        self.state.put_many(rows, ttl_seconds=self.ttl_seconds)

    def peers(self, underlying: str, window_start: datetime) -> list[WindowLite]:
        ws = int(window_start.timestamp())
        if (underlying, ws) not in self._cache:
            self.prefetch(underlying, [window_start])
        return list(self._cache[(underlying, ws)].values())


class DynamoAlertRateLimiter:
    """AlertRateLimiter: an atomic conditional counter per clock hour (pk ``ifd#rate``)."""

    def __init__(self, table_name: str, table: Any = None, ttl_seconds: int = 3 * 86400) -> None:
        self.state = DynamoKeyValueState(table_name, table)
        self.ttl_seconds = ttl_seconds

    def try_acquire(self, bucket: str, limit: int) -> bool:
        return conditional_update(
            self.state.table,
            Key={"pk": "ifd#rate", "sk": bucket},
            UpdateExpression="ADD taken :one SET expires_at = :exp",
            ConditionExpression="attribute_not_exists(taken) OR taken < :limit",
            ExpressionAttributeValues={
                ":one": 1,
                ":limit": limit,
                ":exp": int(time.time()) + self.ttl_seconds,
            },
        )

    def record_excess(self, bucket: str) -> int:
        out = self.state.table.update_item(
            Key={"pk": "ifd#rate", "sk": bucket},
            UpdateExpression="ADD excess :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        return int(out["Attributes"]["excess"])

    def counts(self, bucket: str) -> dict[str, int]:
        item = self.state.table.get_item(Key={"pk": "ifd#rate", "sk": bucket}).get("Item") or {}
        return {"taken": int(item.get("taken", 0)), "excess": int(item.get("excess", 0))}
