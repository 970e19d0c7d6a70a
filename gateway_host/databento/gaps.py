"""Gap handling of the Databento session: hold windows, backfill the gap, release.

A gap is reported by the databento reconnect callback `(gap_start, gap_end)`, by a restart
of the live session (last MBO ts_event .. the new session's first), or by a sequence jump
(FlowIngest). Windows after gap_start are held open while the gap is backfilled from the
historical API within the daily budget (merged with dedupe, so nothing is counted twice),
then released once no gap is outstanding. The count and the hold/release share the ingest
lock (taken first) and the gap lock, so a gap reported during a release is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway_host.databento.config import iso_ns
from gateway_host.databento.spend import SpendTracker
from magic8.flow.backfill import Backfiller
from magic8.flow.ingest import FlowIngest

log = logging.getLogger("magic8.databento")


class GapHandling:
    """Mixin of DatabentoSession: the reconnect/sequence-gap → hold → backfill → release path."""

    ingest: FlowIngest
    backfiller: Backfiller | None
    backfills: dict[str, int]
    spend: SpendTracker | None
    gaps: list[tuple[int, int, str]]
    last_error: str
    _live: Any
    _gap_lock: threading.Lock
    _gaps_outstanding: int
    _backfill_pool: ThreadPoolExecutor

    _restart_gap_from: int | None = None
    _session_id: str | None = None
    # the session whose first record pre-held windows, waiting for its reconnect callback
    _pre_held_session: str | None = None
    _awaiting_reconnect_since: float | None = None
    # the session whose reconnect callback has reported its gap
    _reported_session: str | None = None

    def _on_new_connection(self, session_id: str | None) -> None:
        """First record of a reconnected session (new session id): hold windows now.

        The order of the two is up to TCP segmentation: when the new session's Metadata
        and first records arrive in one segment, the client dispatches the records before
        its reconnect callback, so without this a window could close before the gap is
        known; when the Metadata arrives alone, the callback runs first and has already
        counted (and maybe backfilled) this session's gap: nothing to hold then.
        """
        with self.ingest.lock, self._gap_lock:
            if session_id is not None and session_id == self._reported_session:
                return
            self._gaps_outstanding += 1
            self._pre_held_session = session_id
            self._awaiting_reconnect_since = time.monotonic()
            self.ingest.hold(self.ingest.last_mbo_ts_ns)

    def _on_reconnect(self, gap_start: Any, gap_end: Any) -> None:
        """databento reconnect callback: (last ts_event, new session's start) as Timestamps.

        Runs after the new session authenticated, so the client's session id is the new
        session's: a pre-hold taken for that session already counted this gap.
        """
        live = self._live
        sid = getattr(live, "session_id", None) if live is not None else None
        with self.ingest.lock, self._gap_lock:
            pre_held = self._awaiting_reconnect_since is not None and (
                sid is None or self._pre_held_session in (None, sid)
            )
            if pre_held:
                self._awaiting_reconnect_since = None
                self._pre_held_session = None
            self._reported_session = sid
        self._report_gap(int(gap_start.value), int(gap_end.value), "reconnect", pre_held)

    def _on_sequence_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        self._report_gap(start_ns, end_ns, reason)

    def _report_gap(self, start_ns: int, end_ns: int, reason: str, pre_held: bool = False) -> None:
        log.warning("databento: gap (%s) %s .. %s", reason, iso_ns(start_ns), iso_ns(end_ns))
        self.gaps.append((start_ns, end_ns, reason))
        # count and hold together, ordered with _gap_done's release (ingest lock first)
        with self.ingest.lock, self._gap_lock:
            if not pre_held:
                self._gaps_outstanding += 1
            self.ingest.hold(start_ns)
        try:
            self._backfill_pool.submit(self._backfill, start_ns, end_ns)
        except RuntimeError:  # shutting down: nothing more to backfill
            self._gap_done()

    def _backfill(self, start_ns: int, end_ns: int) -> None:
        try:
            if self.backfiller is None:
                self.backfills["skipped_no_source"] = self.backfills.get("skipped_no_source", 0) + 1
                return
            spend = self.spend
            if spend is not None and not spend.backfill_allowed():
                # the streaming budget is reached: backfill (the optional part) stops first
                key = "skipped_streaming_budget"
                self.backfills[key] = self.backfills.get(key, 0) + 1
                log.warning("databento: gap not backfilled: the streaming budget is reached")
                return
            result = self.backfiller.backfill(start_ns, end_ns)
            self.backfills[result.status] = self.backfills.get(result.status, 0) + 1
            for array in result.arrays:
                self.ingest.on_mbo(array, source="backfill", dedupe=True)
        except Exception as exc:
            self.last_error = f"backfill: {exc}"
            log.exception("databento: backfill failed")
        finally:
            self._gap_done()

    def _gap_done(self) -> None:
        # release under the same locks as the count: a gap reported meanwhile either
        # counted first (no release) or holds again after the release
        with self.ingest.lock, self._gap_lock:
            self._gaps_outstanding = max(self._gaps_outstanding - 1, 0)
            if self._gaps_outstanding == 0:
                self.ingest.release()
