"""Malformed DBN input and malformed flow records: reported, skipped, never a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import databento as db
import pytest
import zstandard

from magic8.flow.ingest import FlowIngest
from magic8.flow.replay import replay
from magic8.settings import REPO_ROOT
from magic8_dev.resilience.table import ResilienceRow, record
from tests.resilience.conftest import SAMPLE_SESSION

pytestmark = [pytest.mark.resilience, pytest.mark.xdist_group("resilience-malformed_input")]

SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "databento"
MBO_RECORD_BYTES = 56


def test_truncated_dbn_keeps_every_complete_record(tmp_path: Path) -> None:
    day = sorted(p for p in SAMPLE_SESSION.iterdir() if p.name.startswith("day-"))[1]
    raw = zstandard.ZstdDecompressor().decompress(
        (day / "mbo.dbn.zst").read_bytes(), max_output_size=1 << 30
    )
    full = db.DBNStore.from_bytes(raw).to_ndarray()
    header = len(raw) - len(full) * MBO_RECORD_BYTES
    cut = header + (len(full) // 2) * MBO_RECORD_BYTES + 13  # half a record dangling
    target = tmp_path / day.name
    target.mkdir()
    shutil.copy(day / "definition.dbn.zst", target)
    (target / "mbo.dbn").write_bytes(raw[:cut])
    windows: list[object] = []
    ingest = FlowIngest(on_windows=windows.extend)
    result = replay([target], ingest)
    complete = len(full) // 2
    used = ingest.counts()["used"].get("MBOMsg", 0)
    row = record(
        ResilienceRow(
            scenario="truncated DBN file (half a record dangling)",
            injected=1,
            survived=True,
            records_in=complete,
            records_out=used,
        )
    )
    assert result.records - 67 == used == complete  # 67 definitions in the sample day
    assert windows
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
    accounted = sum(counts["used"].values()) + sum(counts["skipped"].values())
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
