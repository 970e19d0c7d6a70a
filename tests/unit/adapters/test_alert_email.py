"""Alert e-mails: a few readable lines per kind (the JSON stays for machines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from magic8.domain.alerts import Alert

AT = datetime(2026, 11, 23, 15, 5, tzinfo=UTC)


def alert(kind: str, payload: dict[str, object], subject: str = "magic8 alert") -> Alert:
    return Alert(
        kind=kind,  # type: ignore[arg-type]
        symbol="NQ",
        severity="critical",
        subject=subject,
        payload=payload,
        dedupe_key=f"{kind}:1",
        created_at=AT,
    )


def test_ifd_signal_reads_like_a_trade_note() -> None:
    text = alert(
        "ifd_signal",
        {
            "underlying": "NQ",
            "strike": 21000.0,
            "option_type": "C",
            "direction": "BULLISH",
            "confidence": 0.912,
            "ask_volume": 640,
            "bid_volume": 35,
            "pattern": "sweep",
            "window_start": "2026-11-23T15:00:00+00:00",
            "window_end": "2026-11-23T15:05:00+00:00",
        },
        "IFD BULLISH NQ 21000C conf 0.91: institutional buying of calls",
    ).email_text()
    lines = text.splitlines()
    assert lines[0].startswith("IFD BULLISH NQ 21000C")
    assert "Institutional buying of NQ calls at strike 21000.0: bullish signal." in text
    assert "Confidence 0.91 (pattern: sweep)." in text
    assert "Window 10:00-10:05 ET" in text  # Eastern time, not UTC
    assert "Sent Mon 2026-11-23 10:05 ET" in text


def test_gateway_stale_says_what_is_wrong_in_words() -> None:
    no_data = alert("gateway_stale", {"reason": "no_mbo_data", "mbo_age_s": 1200.0}).email_text()
    assert "no NQ options order-book (MBO) data has arrived for 20 min" in no_data
    beat = alert(
        "gateway_stale", {"reason": "heartbeat", "age_s": None, "stale_after_s": 180.0}
    ).email_text()
    assert "No gateway heartbeat has been seen (limit 3 min)" in beat
    assert "runbook" in beat


def test_confidence_cross_and_the_machine_copies() -> None:
    a = alert(
        "confidence_cross",
        {
            "entry": {"strategy": "Butterfly"},
            "previous_probability": 0.62,
            "win_probability": 0.48,
            "threshold": 0.55,
            "reasons": ["crossed below 55%"],
            "data_source": "gateway",
            "model_type": "xgboost",
        },
    )
    assert "Butterfly on NQ: win probability 62% -> 48% (threshold 55%)." in a.email_text()
    bodies = json.loads(a.sns_message())
    assert set(bodies) == {"default", "email", "sqs", "lambda"}
    assert json.loads(bodies["sqs"]) == json.loads(a.message_json())
