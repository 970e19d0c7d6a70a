"""Instrument definitions → an instrument map.

Databento `definition` records (InstrumentDefMsg, any DBN version) describe each
instrument: raw symbol, instrument class (C/P for options, F for futures, ...), strike,
expiration, underlying and multiplier. Pure functions turn them into `Instrument`s, from
record objects (live callbacks) or from numpy record arrays (`DBNStore.to_ndarray()`).
Prices are fixed-point 1e-9; undefined values are the DBN sentinels (i64 max, u64 max,
i32 max).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

FIXED_PRICE_SCALE = 1_000_000_000
UNDEF_PRICE = 2**63 - 1  # i64::MAX
UNDEF_TIMESTAMP = 2**64 - 1  # u64::MAX
UNDEF_I32 = 2**31 - 1  # i32::MAX
UNKNOWN_UNDERLYING = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_id: int
    raw_symbol: str
    underlying: str
    option_type: str | None  # "C" | "P" | None (futures, spreads, ...)
    strike: float | None
    expiration: str | None  # ISO date (UTC)
    multiplier: float
    instrument_class: str = ""

    @property
    def is_option(self) -> bool:
        return self.option_type is not None


def _text(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    if value is None:
        return ""
    # enums (databento_dbn.InstrumentClass) expose their code as .value
    raw = getattr(value, "value", value)
    return str(raw).strip()


def fixed_to_float(raw: int | None) -> float | None:
    """A 1e-9 fixed-point value, or None for the undefined sentinel."""
    if raw is None or int(raw) == UNDEF_PRICE:
        return None
    return int(raw) / FIXED_PRICE_SCALE


def expiration_date(raw_ns: int | None) -> str | None:
    if raw_ns is None:
        return None
    value = int(raw_ns)
    if value == UNDEF_TIMESTAMP or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1e9, tz=UTC).date().isoformat()


def multiplier_of(unit_of_measure_qty: int | None, contract_multiplier: int | None) -> float:
    """unit_of_measure_qty (1e-9) if defined, else contract_multiplier, else 1."""
    qty = fixed_to_float(unit_of_measure_qty)
    if qty is not None and qty > 0:
        return qty
    if contract_multiplier is not None:
        cm = int(contract_multiplier)
        if 0 < cm < UNDEF_I32:
            return float(cm)
    return 1.0


def make_instrument(
    instrument_id: int,
    raw_symbol: Any,
    instrument_class: Any,
    strike_price: int | None,
    expiration: int | None,
    underlying: Any,
    unit_of_measure_qty: int | None = None,
    contract_multiplier: int | None = None,
    asset: Any = "",
) -> Instrument:
    """One Instrument from raw definition fields (fixed-point prices, ns timestamps)."""
    cls = _text(instrument_class)
    symbol = _text(raw_symbol)
    option_type = cls if cls in ("C", "P") else None
    strike = fixed_to_float(strike_price) if option_type else None
    if strike is not None and strike <= 0:
        strike = None
    under = _text(underlying) or symbol or _text(asset) or UNKNOWN_UNDERLYING
    return Instrument(
        instrument_id=int(instrument_id),
        raw_symbol=symbol,
        underlying=under[:32],
        option_type=option_type if strike is not None else None,
        strike=strike,
        expiration=expiration_date(expiration),
        multiplier=multiplier_of(unit_of_measure_qty, contract_multiplier),
        instrument_class=cls,
    )


def instrument_from_record(record: Any) -> Instrument:
    """From a databento_dbn InstrumentDefMsg (any version) delivered by Live or DBNStore."""
    return make_instrument(
        instrument_id=record.instrument_id,
        raw_symbol=record.raw_symbol,
        instrument_class=record.instrument_class,
        strike_price=getattr(record, "strike_price", None),
        expiration=getattr(record, "expiration", None),
        underlying=getattr(record, "underlying", ""),
        unit_of_measure_qty=getattr(record, "unit_of_measure_qty", None),
        contract_multiplier=getattr(record, "contract_multiplier", None),
        asset=getattr(record, "asset", ""),
    )


def instruments_from_ndarray(array: np.ndarray) -> Iterator[Instrument]:
    """From a definition record array (`DBNStore.to_ndarray()`, DBN v1/v2/v3 dtypes)."""
    names = set(array.dtype.names or ())

    def col(name: str) -> np.ndarray | None:
        return array[name] if name in names else None

    ids = array["instrument_id"]
    cols = {
        "raw_symbol": col("raw_symbol"),
        "instrument_class": col("instrument_class"),
        "strike_price": col("strike_price"),
        "expiration": col("expiration"),
        "underlying": col("underlying"),
        "unit_of_measure_qty": col("unit_of_measure_qty"),
        "contract_multiplier": col("contract_multiplier"),
        "asset": col("asset"),
    }
    for i in range(len(array)):
        values = {k: (None if v is None else v[i]) for k, v in cols.items()}
        yield make_instrument(
            instrument_id=int(ids[i]),
            raw_symbol=values["raw_symbol"],
            instrument_class=values["instrument_class"],
            strike_price=None if values["strike_price"] is None else int(values["strike_price"]),
            expiration=None if values["expiration"] is None else int(values["expiration"]),
            underlying=values["underlying"],
            unit_of_measure_qty=(
                None
                if values["unit_of_measure_qty"] is None
                else int(values["unit_of_measure_qty"])
            ),
            contract_multiplier=(
                None
                if values["contract_multiplier"] is None
                else int(values["contract_multiplier"])
            ),
            asset=values["asset"] if values["asset"] is not None else "",
        )


class InstrumentMap:
    """instrument_id → Instrument. Definitions win over symbol-only mappings."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_id: dict[int, Instrument] = {}
        self._defined: set[int] = set()
        for inst in instruments:
            self.add(inst)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self._by_id

    def get(self, instrument_id: int) -> Instrument | None:
        return self._by_id.get(int(instrument_id))

    def ids(self) -> list[int]:
        """Every known instrument id (defined or symbol-mapped)."""
        return list(self._by_id)

    def add(self, instrument: Instrument) -> None:
        self._by_id[instrument.instrument_id] = instrument
        self._defined.add(instrument.instrument_id)

    def add_symbol(self, instrument_id: int, symbol: str) -> None:
        """A symbol without a definition (metadata mappings, SymbolMappingMsg): no strike."""
        iid = int(instrument_id)
        if iid in self._defined or not symbol:
            return
        self._by_id[iid] = Instrument(
            instrument_id=iid,
            raw_symbol=symbol,
            underlying=symbol[:32],
            option_type=None,
            strike=None,
            expiration=None,
            multiplier=1.0,
        )

    def add_definitions(self, array: np.ndarray) -> int:
        n = 0
        for inst in instruments_from_ndarray(array):
            self.add(inst)
            n += 1
        return n

    def add_metadata_mappings(self, metadata: Any) -> int:
        """Symbols from a DBN header's symbology (raw symbol → instrument id intervals)."""
        n = 0
        mappings = getattr(metadata, "mappings", None) or {}
        items = mappings.items() if isinstance(mappings, dict) else _mapping_items(mappings)
        for raw, intervals in items:
            for interval in intervals or []:
                sym: Any = interval.get("symbol") if isinstance(interval, dict) else interval.symbol
                try:
                    iid = int(str(sym))
                except (TypeError, ValueError):
                    continue
                self.add_symbol(iid, str(raw))
                n += 1
        return n

    def instruments(self) -> list[Instrument]:
        return list(self._by_id.values())

    def unknown(self, instrument_id: int) -> Instrument:
        return Instrument(
            instrument_id=int(instrument_id),
            raw_symbol="",
            underlying=UNKNOWN_UNDERLYING,
            option_type=None,
            strike=None,
            expiration=None,
            multiplier=1.0,
        )


def _mapping_items(mappings: Iterable[Any]) -> Iterator[tuple[str, list[Any]]]:
    for mapping in mappings:
        yield str(mapping.raw_symbol), list(mapping.intervals)
