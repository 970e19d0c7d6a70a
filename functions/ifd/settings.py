"""Typed configuration of the ifd function (env MAGIC8_*), parsed once per container."""

from __future__ import annotations

from magic8.ifd.analysis import AnalysisConfig
from magic8.ifd.calibration import load_calibration
from magic8.ifd.detector import IfdConfig
from magic8.ifd.values import SignalPolicy
from magic8.settings import AwsSettings


class IfdSettings(AwsSettings):
    """Resource names from AwsSettings plus the detector's thresholds.

    MAGIC8_IFD_STORE_THRESHOLD, MAGIC8_IFD_ALERT_THRESHOLD, MAGIC8_IFD_MAX_ALERTS_PER_HOUR,
    MAGIC8_IFD_REALERT_MINUTES, MAGIC8_IFD_W_VOLUME,
    MAGIC8_IFD_IDEMPOTENCY_TTL_S, MAGIC8_IFD_SIGNAL_TTL_DAYS, MAGIC8_WS_ENDPOINT.
    """

    # WebSocket Management API endpoint: stored signals are pushed to subscribers of "NQ"
    ws_endpoint: str = ""
    ifd_store_threshold: float = 0.7
    # None: the threshold fitted to the false-alarm budget (magic8/ifd/calibration.json)
    ifd_alert_threshold: float | None = None
    ifd_max_alerts_per_hour: int = 50
    ifd_realert_minutes: int = 30
    ifd_w_volume: float = 0.5  # evidence bonus per volume z above the baseline
    # idempotency records outlive the stream's retention (48 h) so any redelivery is caught
    ifd_idempotency_ttl_s: int = 49 * 3600
    ifd_signal_ttl_days: int = 30

    def detector_config(self) -> IfdConfig:
        return IfdConfig(
            analysis=AnalysisConfig(w_volume=self.ifd_w_volume),
            policy=SignalPolicy(
                store_threshold=self.ifd_store_threshold,
                alert_threshold=(
                    load_calibration().alert_threshold
                    if self.ifd_alert_threshold is None
                    else self.ifd_alert_threshold
                ),
                max_alerts_per_hour=self.ifd_max_alerts_per_hour,
                realert_minutes=self.ifd_realert_minutes,
            ),
        )
