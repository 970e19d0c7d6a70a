"""Malformed DBN input and malformed flow records: reported, skipped, never a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import databento as db
import numpy as np
import pytest
import zstandard

from magic8.flow.ingest import MBO_DTYPE, FlowIngest
from magic8.flow.replay import replay
from magic8.settings import REPO_ROOT
from magic8_dev.resilience.table import ResilienceRow, record
from tests.resilience.conftest import SAMPLE_SESSION

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-malformed_input")]

SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "databento"
MBO_RECORD_BYTES = 56


def _day_with(tmp_path: Path, mbo_bytes: bytes) -> tuple[Path, int]:
    """A copy of the sample's second day whose MBO file is `mbo_bytes` (uncompressed)."""
    day = sorted(p for p in SAMPLE_SESSION.iterdir() if p.name.startswith("day-"))[1]
    target = tmp_path / day.name
    target.mkdir()
    shutil.copy(day / "definition.dbn.zst", target)
    (target / "mbo.dbn").write_bytes(mbo_bytes)
    return target, len(mbo_bytes)


def _sample_mbo() -> tuple[bytes, int]:
    day = sorted(p for p in SAMPLE_SESSION.iterdir() if p.name.startswith("day-"))[1]
    raw = zstandard.ZstdDecompressor().decompress(
        (day / "mbo.dbn.zst").read_bytes(), max_output_size=1 << 30
    )
    n = len(db.DBNStore.from_bytes(raw).to_ndarray())
    return raw, len(raw) - n * MBO_RECORD_BYTES


@pytest.mark.parametrize("damage", ["truncated", "garbage after header", "flipped zstd byte"])
def test_a_damaged_dbn_file_is_an_error_and_emits_nothing(tmp_path: Path, damage: str) -> None:
    """A file cut mid-record, a valid header followed by random bytes, a .zst with a
    flipped byte: an error that says how much was read; not one window from that file."""
    raw, header = _sample_mbo()
    n_full = (len(raw) - header) // MBO_RECORD_BYTES
    if damage == "truncated":
        target, _ = _day_with(tmp_path, raw[: header + (n_full // 2) * MBO_RECORD_BYTES + 13])
        name = "mbo.dbn"
    elif damage == "garbage after header":
        target, _ = _day_with(tmp_path, raw[:header] + os.urandom(100 * 1024))
        name = "mbo.dbn"
    else:
        target, _ = _day_with(tmp_path, b"")
        (target / "mbo.dbn").unlink()
        packed = bytearray(zstandard.ZstdCompressor().compress(raw))
        packed[len(packed) // 2] ^= 0xFF
        (target / "mbo.dbn.zst").write_bytes(bytes(packed))
        name = "mbo.dbn.zst"
    windows: list[object] = []
    ingest = FlowIngest(on_windows=windows.extend)
    result = replay([target], ingest)
    failed = {Path(p).name: m for p, m in result.failed.items()}
    row = record(
        ResilienceRow(
            scenario=f"DBN file {damage}: error, nothing emitted",
            injected=1,
            survived=name in failed and not windows,
            records_in=0,
            records_out=len(windows),
            note=failed.get(name, "")[-90:],
        )
    )
    assert name in failed, result
    assert "after" in failed[name] and "records" in failed[name]  # says how much was read
    assert ingest.counts()["used"].get("MBOMsg", 0) == 0
    assert windows == []
    assert row.nothing_lost


def test_implausible_records_are_counted_and_rejected(tmp_path: Path) -> None:
    """Records outside the file's declared range, absurd prices/sizes, unknown instruments:
    counted by reason, never aggregated."""
    raw, header = _sample_mbo()
    records = np.frombuffer(raw[header:], dtype=MBO_DTYPE).copy()
    trades = np.flatnonzero(records["action"] == b"T")[:40]
    records["ts_event"][trades[:10]] = 1  # 1970: outside the declared range
    records["price"][trades[10:20]] = 10**18  # 1e9 points
    records["size"][trades[20:30]] = 10**9
    records["instrument_id"][trades[30:40]] = 999_999_999
    target, _ = _day_with(tmp_path, raw[:header] + records.tobytes())
    ingest = FlowIngest()
    result = replay([target], ingest)
    rejected = ingest.counts()["rejected"]
    row = record(
        ResilienceRow(
            scenario="implausible DBN records (time, price, size, instrument)",
            injected=40,
            survived=not result.failed,
            records_in=40,
            records_out=sum(rejected.values()),
            note=str(rejected),
        )
    )
    assert rejected == {"time": 10, "price": 10, "size": 10, "instrument": 10}
    assert row.nothing_lost


def test_garbage_files_are_reported_and_the_rest_replayed(tmp_path: Path) -> None:
    day = sorted(p for p in SAMPLE_SESSION.iterdir() if p.name.startswith("day-"))[0]
    target = tmp_path / day.name
    shutil.copytree(day, target)
    (target / "zz-noise.dbn").write_bytes(os.urandom(4096))  # not DBN at all
    (target / "zz-header.dbn").write_bytes(b"DBN\x02" + os.urandom(4096))  # corrupt metadata
    ingest = FlowIngest()
    result = replay([target], ingest)
    reference = FlowIngest()
    expected = replay([day], reference)
    row = record(
        ResilienceRow(
            scenario="garbage / corrupt-header DBN files beside good ones",
            injected=2,
            survived=True,
            records_in=expected.records,
            records_out=result.records,
            note="; ".join(sorted(Path(p).name for p in result.failed)),
        )
    )
    assert sorted(Path(p).name for p in result.failed) == ["zz-header.dbn", "zz-noise.dbn"]
    assert all("Error" in m for m in result.failed.values())
    assert row.nothing_lost


def test_unknown_record_types_are_counted_and_skipped() -> None:
    ingest = FlowIngest()
    live = SHARED_DATA / "LIVE_test_data.live.dbn.zst"
    result = replay([live], ingest)
    counts = ingest.counts()
    seen = sum(counts["seen"].values())
    accounted = (
        sum(counts["used"].values())
        + sum(counts["skipped"].values())
        + sum(counts["rejected"].values())
    )
    row = record(
        ResilienceRow(
            scenario="mixed live stream with record types the gateway does not use",
            injected=sum(counts["skipped"].values()),
            survived=not result.failed,
            records_in=seen,
            records_out=accounted,
        )
    )
    assert seen == result.records == 46
    assert counts["skipped"], "some record types are skipped"
    assert row.nothing_lost
