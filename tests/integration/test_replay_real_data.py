"""ACCEPTANCE: `magic8 replay` on real CME MBO equals an independent count with databento."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import databento as db
import pandas as pd
import pytest

from magic8.domain.flow import PressureWindow
from magic8_dev.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "data" / "databento"
ESH4 = SHARED / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"

pytestmark = pytest.mark.skipif(not ESH4.exists(), reason=f"shared data not found at {SHARED}")


def _replay(tmp_path: Path, *files: Path) -> tuple[list[PressureWindow], dict]:
    out = tmp_path / "out.jsonl"
    assert main(["replay", *map(str, files), "--jsonl", str(out)]) == 0
    lines = out.read_text().splitlines()
    return [PressureWindow.model_validate_json(x) for x in lines], {}


def test_replay_matches_independent_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    windows, _ = _replay(tmp_path, ESH4)
    report = json.loads(capsys.readouterr().out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = db.DBNStore.from_file(ESH4).to_df(map_symbols=False)
    trades = df[df["action"] == "T"].copy()
    fills = df[df["action"] == "F"]
    assert len(trades) == 2973 and len(fills) == 6371
    trades["window_start"] = trades["ts_event"].dt.floor("5min")
    expected = (
        trades.pivot_table(
            index=["instrument_id", "window_start"],
            columns="side",
            values="size",
            aggfunc="sum",
            fill_value=0,
        )
        .reindex(columns=["A", "B", "N"], fill_value=0)
        .join(trades.groupby(["instrument_id", "window_start"]).size().rename("n"))
    )
    got = {
        (w.instrument_id, pd.Timestamp(w.window_start)): (
            w.bid_volume,
            w.ask_volume,
            w.unknown_volume,
            w.total_trades,
        )
        for w in windows
    }
    assert len(got) == len(windows) == len(expected)
    for (iid, start), row in expected.iterrows():
        assert got[(iid, start)] == (row["A"], row["B"], row["N"], row["n"]), (iid, start)
    # every trade counted once, fills never
    assert sum(w.total_trades for w in windows) == len(trades)
    assert sum(w.total_volume for w in windows) == trades["size"].sum()
    assert report["trades"] == {"counted": 2973, "fill_records_ignored": 6371}
    assert report["record_types"]["seen"] == {"MBOMsg": 68792}
    assert all(w.underlying == "ESH4" and w.strike is None for w in windows)
    assert all(w.source == "replay" for w in windows)


def test_definitions_decode(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    windows, _ = _replay(tmp_path, SHARED / "definition-glbx-es-opt.dbn.zst")
    report = json.loads(capsys.readouterr().out)
    assert windows == []
    assert report["record_types"]["used"] == {"InstrumentDefMsg": 2}
    assert report["errors"] == []


def test_mixed_live_file_counts_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _replay(tmp_path, SHARED / "LIVE_test_data.live.dbn.zst")
    report = json.loads(capsys.readouterr().out)
    counts = report["record_types"]
    assert sum(counts["seen"].values()) == 46
    assert counts["used"] == {"SymbolMappingMsg": 20, "InstrumentDefMsg": 2, "MBOMsg": 5}
    assert counts["skipped"] == {
        "OHLCVMsg": 4,
        "StatMsg": 9,
        "MBP1Msg": 2,
        "TradeMsg": 2,
        "MBP10Msg": 2,
    }
    assert report["errors"] == []


def test_all_shared_files_replay_without_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    files = sorted(SHARED.glob("*.dbn.zst"))
    assert len(files) == 7
    _replay(tmp_path, SHARED)  # a folder: every file, definitions first
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 7 and report["errors"] == []
