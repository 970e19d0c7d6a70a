"""Generated sessions are real DBN (decoded by databento) and truth.json matches the data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import databento as db
import pandas as pd
import pytest

from magic8.flow.instruments import instruments_from_ndarray
from magic8_dev.cli import main
from magic8_dev.flow.generator import (
    SessionParams,
    direction_of,
    generate_mbo_file,
    generate_session,
)

SAMPLE = Path(__file__).resolve().parents[2] / "layers/shared/magic8_dev/data/sessions/sample"


def _df(path: Path) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return db.DBNStore.from_file(path).to_df(map_symbols=False)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("session")
    truth = generate_session(
        out, SessionParams(days=3, seed=3, quiet_trades_per_day=800, episodes_per_day=2)
    )
    return out, truth


@pytest.mark.parametrize(
    ("option_type", "aggressor", "direction"),
    [("C", "BUY", "LONG"), ("C", "SELL", "SHORT"), ("P", "BUY", "SHORT"), ("P", "SELL", "LONG")],
)
def test_direction(option_type: str, aggressor: str, direction: str) -> None:
    assert direction_of(option_type, aggressor) == direction


def test_layout_and_decoding(session: tuple[Path, dict]) -> None:
    out, truth = session
    days = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert days == ["day-2025-09-15", "day-2025-09-16", "day-2025-09-17"]
    for d, info in zip(days, truth["days"], strict=True):
        defs = db.DBNStore.from_file(out / d / "definition.dbn.zst")
        mbo = db.DBNStore.from_file(out / d / "mbo.dbn.zst")
        assert defs.schema == "definition" and mbo.schema == "mbo"
        assert defs.metadata.dataset == "GLBX.MDP3"
        insts = list(instruments_from_ndarray(defs.to_ndarray()))
        assert sum(i.option_type is None for i in insts) == 1  # the future
        assert {i.multiplier for i in insts if i.option_type} == {20.0}
        arr = mbo.to_ndarray()
        assert len(arr) == info["records"]
        assert (arr["ts_event"][1:] >= arr["ts_event"][:-1]).all()
        assert ((arr["action"] == b"T").sum(), (arr["action"] == b"F").sum()) == (
            info["trades"],
            info["trades"],
        )


def test_truth_consistent_with_records(session: tuple[Path, dict]) -> None:
    out, truth = session
    assert truth["episodes"], "episodes expected after the warm-up day"
    assert {e["day"] for e in truth["episodes"]} <= {"2025-09-16", "2025-09-17"}
    for e in truth["episodes"]:
        assert e["direction"] == direction_of(e["option_type"], e["aggressor"])
        start, end = pd.Timestamp(e["start"]), pd.Timestamp(e["end"])
        assert start.utcoffset() is not None and start < end
        defs = db.DBNStore.from_file(out / f"day-{e['day']}" / "definition.dbn.zst")
        by_id = {i.instrument_id: i for i in instruments_from_ndarray(defs.to_ndarray())}
        assert sorted(by_id[i].strike for i in e["instrument_ids"]) == e["strikes"]  # type: ignore[type-var]
        assert {by_id[i].option_type for i in e["instrument_ids"]} == {e["option_type"]}
        df = _df(out / f"day-{e['day']}" / "mbo.dbn.zst")
        t = df[
            (df["action"] == "T")
            & df["instrument_id"].isin(e["instrument_ids"])
            & (df["ts_event"] >= start)
            & (df["ts_event"] <= end)
        ]
        want = "B" if e["aggressor"] == "BUY" else "A"
        share = t.loc[t["side"] == want, "size"].sum() / t["size"].sum()
        assert share > 0.75, (e, share)
    for b in truth["bait"]:
        assert b["kind"] in ("mm_straddle", "mm_strangle")
        assert len(b["instrument_ids"]) == 2


def test_cli_and_sample_session(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate-session", str(tmp_path / "s"), "--days", "2", "--seed", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["days"] == ["2025-09-15", "2025-09-16"]
    assert main(["generate-session", str(tmp_path / "x"), "--days", "0"]) == 2


def test_shipped_sample_session() -> None:
    files = [f for f in SAMPLE.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 5 * 1024 * 1024
    truth = json.loads((SAMPLE / "truth.json").read_text())
    kinds = {(e["option_type"], e["aggressor"]) for e in truth["episodes"]}
    assert kinds == {("C", "BUY"), ("C", "SELL"), ("P", "BUY"), ("P", "SELL")}
    assert len(truth["bait"]) >= 3 and len(truth["days"]) >= 5
    for d in truth["days"]:
        assert (SAMPLE / f"day-{d['day']}" / "mbo.dbn.zst").exists()


def test_bench_file(tmp_path: Path) -> None:
    n = generate_mbo_file(tmp_path / "b.dbn.zst", 20_000, seed=2)
    assert n == 20_000
    assert len(db.DBNStore.from_file(tmp_path / "b.dbn.zst").to_ndarray()) == 20_000


# --- the NQ future's 1-minute bars (issue 13: the price chart) -----------------------------


def test_sample_futures_files_are_the_generator_output_and_follow_the_episodes(
    tmp_path: Path,
) -> None:
    from magic8_dev.flow.generator import FUTURES_FILE, generate_futures

    # the shipped files are exactly what the generator writes for the sample's parameters
    params = json.loads((SAMPLE / "truth.json").read_text())["generator"]
    assert (params["days"], params["seed"]) == (8, 8)
    written = generate_futures(tmp_path, SessionParams(days=8, seed=8))
    assert len(written) == 8
    for path in written:
        shipped = SAMPLE / path.parent.name / FUTURES_FILE
        assert shipped.read_bytes() == path.read_bytes(), path.parent.name
        assert shipped.stat().st_size < 16_000  # small
    # 390 one-minute bars per day of the future's instrument id, prices inside the strikes
    truth = json.loads((SAMPLE / "truth.json").read_text())
    store = db.DBNStore.from_file(SAMPLE / "day-2025-09-16" / FUTURES_FILE)
    assert str(store.schema) == "ohlcv-1m" and store.symbols == ["NQ.c.0"]
    bars = _df(SAMPLE / "day-2025-09-16" / FUTURES_FILE)
    assert len(bars) == 390 and set(bars["instrument_id"]) == {100_000}
    assert bars["low"].min() > 19_600 and bars["high"].max() < 20_400
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "close"]].max(axis=1) <= bars["high"]).all()
    # every labelled episode moves the price its way (LONG up, SHORT down)
    for e in truth["episodes"]:
        day = _df(SAMPLE / f"day-{e['day']}" / FUTURES_FILE)
        during = day[(day.index >= e["start"]) & (day.index < e["end"])]
        move = during["close"].iloc[-1] - during["open"].iloc[0]
        assert (move > 0) == (e["direction"] == "LONG"), (e["day"], e["start"], move)


def test_generate_session_writes_the_futures_file_beside_the_options(
    session: tuple[Path, dict],
) -> None:
    out, truth = session
    for d in truth["days"]:
        folder = out / f"day-{d['day']}"
        assert sorted(p.name for p in folder.iterdir()) == [
            "definition.dbn.zst",
            "mbo.dbn.zst",
            "ohlcv-1m.dbn.zst",
        ]
