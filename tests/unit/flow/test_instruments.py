"""Definitions → instrument map (pure functions, parametrized tables)."""

from __future__ import annotations

from pathlib import Path

import databento as db
import databento_dbn as dbn
import pytest

from magic8.flow.instruments import (
    UNDEF_I32,
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    InstrumentMap,
    expiration_date,
    fixed_to_float,
    instrument_from_record,
    instruments_from_ndarray,
    make_instrument,
    multiplier_of,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "databento"
EXP_NS = 1_718_976_600_000_000_000  # 2024-06-21 13:30 UTC


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(UNDEF_PRICE, None), (None, None), (20100 * 10**9, 20100.0), (250_000_000, 0.25), (0, 0.0)],
)
def test_fixed_to_float(raw: int | None, expected: float | None) -> None:
    assert fixed_to_float(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(UNDEF_TIMESTAMP, None), (0, None), (None, None), (EXP_NS, "2024-06-21")],
)
def test_expiration_date(raw: int | None, expected: str | None) -> None:
    assert expiration_date(raw) == expected


@pytest.mark.parametrize(
    ("uom_qty", "contract_multiplier", "expected"),
    [
        (20 * 10**9, UNDEF_I32, 20.0),  # NQ options: unit_of_measure_qty 20
        (50 * 10**9, None, 50.0),
        (UNDEF_PRICE, 5, 5.0),
        (UNDEF_PRICE, UNDEF_I32, 1.0),
        (None, None, 1.0),
        (0, 0, 1.0),
    ],
)
def test_multiplier(uom_qty: int | None, contract_multiplier: int | None, expected: float) -> None:
    assert multiplier_of(uom_qty, contract_multiplier) == expected


@pytest.mark.parametrize(
    ("cls", "symbol", "strike", "underlying", "exp_type", "exp_strike", "exp_under"),
    [
        ("C", "NQZ5 C20100", 20100 * 10**9, "NQZ5", "C", 20100.0, "NQZ5"),
        ("P", "NQZ5 P19900", 19900 * 10**9, "NQZ5", "P", 19900.0, "NQZ5"),
        (b"C", b"ESM4 C4250\x00\x00", 4250 * 10**9, b"ESM4\x00", "C", 4250.0, "ESM4"),
        (dbn.InstrumentClass.PUT, "Q1AZ5 P20000", 20000 * 10**9, "NQZ5", "P", 20000.0, "NQZ5"),
        ("F", "NQZ5", UNDEF_PRICE, "", None, None, "NQZ5"),  # future: no strike
        ("C", "BAD C0", UNDEF_PRICE, "NQZ5", None, None, "NQZ5"),  # option without strike
        ("S", "UD:1V: VT 1234", UNDEF_PRICE, "", None, None, "UD:1V: VT 1234"),  # spread
        ("", "", UNDEF_PRICE, "", None, None, "UNKNOWN"),
    ],
)
def test_make_instrument(
    cls: object,
    symbol: object,
    strike: int,
    underlying: object,
    exp_type: str | None,
    exp_strike: float | None,
    exp_under: str,
) -> None:
    inst = make_instrument(7, symbol, cls, strike, EXP_NS, underlying, 20 * 10**9, UNDEF_I32)
    assert inst.option_type == exp_type
    assert inst.strike == exp_strike
    assert inst.underlying == exp_under
    assert inst.is_option == (exp_type is not None)
    assert inst.expiration == "2024-06-21"
    assert inst.multiplier == 20.0


def test_from_record_object() -> None:
    rec = dbn.InstrumentDefMsg(
        publisher_id=1,
        instrument_id=42,
        ts_event=1,
        ts_recv=1,
        min_price_increment=250_000_000,
        display_factor=10**9,
        raw_symbol="NQZ5 C20100",
        asset="NQ",
        security_type="OOF",
        instrument_class=dbn.InstrumentClass.CALL,
        security_update_action=dbn.SecurityUpdateAction.ADD,
        strike_price=20100 * 10**9,
        expiration=EXP_NS,
        underlying="NQZ5",
        unit_of_measure_qty=20 * 10**9,
    )
    inst = instrument_from_record(rec)
    assert (inst.instrument_id, inst.option_type, inst.strike, inst.underlying) == (
        42,
        "C",
        20100.0,
        "NQZ5",
    )
    assert inst.multiplier == 20.0


def test_real_es_option_definitions() -> None:
    store = db.DBNStore.from_file(SHARED / "definition-glbx-es-opt.dbn.zst")
    insts = {i.raw_symbol: i for i in instruments_from_ndarray(store.to_ndarray())}
    assert set(insts) == {"ESM4 C4250", "ESM4 C3550"}
    c = insts["ESM4 C4250"]
    assert (c.instrument_id, c.option_type, c.strike, c.underlying, c.expiration) == (
        4161490,
        "C",
        4250.0,
        "ESM4",
        "2024-06-21",
    )
    assert c.multiplier == 50.0
    # the records decoded one by one give the same instruments
    assert {instrument_from_record(r).raw_symbol for r in store} == set(insts)


def test_map_definitions_win_over_symbols() -> None:
    m = InstrumentMap()
    m.add_symbol(1, "NQZ5")
    assert m.get(1) is not None and m.get(1).strike is None  # type: ignore[union-attr]
    m.add(make_instrument(1, "NQZ5 C20100", "C", 20100 * 10**9, EXP_NS, "NQZ5"))
    m.add_symbol(1, "other")
    assert m.get(1).strike == 20100.0  # type: ignore[union-attr]
    assert m.unknown(9).underlying == "UNKNOWN"


def test_metadata_mappings() -> None:
    store = db.DBNStore.from_file(SHARED / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")
    m = InstrumentMap()
    assert m.add_metadata_mappings(store.metadata) == 1
    assert m.get(17077).raw_symbol == "ESH4"  # type: ignore[union-attr]
