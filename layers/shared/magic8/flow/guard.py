"""DBN input validated like the network input it is (issue 16).

Two layers, shared by replay and the gateway's live path (both go through FlowIngest):

- structure: every record of an MBO array is an MBO record (rtype 0xA0, length 14 words);
  anything else means the bytes are not what the file says (garbage after a valid header,
  a corrupt frame) and the whole file is refused (`CorruptDbn`), nothing emitted;
- plausibility, per record: ts_event inside the file's declared time range (when known)
  and the plausible range of magic8.domain.validation; the instrument defined; a trade's
  price and size within sane bounds. Records that fail are counted by reason and dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from magic8.domain import validation
from magic8.flow.instruments import FIXED_PRICE_SCALE, InstrumentMap

MBO_RTYPE = 0xA0
MBO_LENGTH_WORDS = 14  # 56 bytes
UNDEF_TS = 2**64 - 1


class CorruptDbn(ValueError):
    """A file (or live buffer) whose bytes are not the records it declares."""


@dataclass(frozen=True)
class Screened:
    kept: np.ndarray
    rejected: Counter[str]


def check_structure(array: np.ndarray, offset: int = 0) -> None:
    """Raise CorruptDbn naming the first record that is not an MBO record."""
    if len(array) == 0:
        return
    bad = (array["rtype"] != MBO_RTYPE) | (array["length"] != MBO_LENGTH_WORDS)
    if bad.any():
        i = int(np.argmax(bad))
        raise CorruptDbn(
            f"record {offset + i} is not an MBO record (rtype {int(array['rtype'][i])}, "
            f"length {int(array['length'][i]) * 4} bytes)"
        )


def declared_range(metadata: object) -> tuple[int, int] | None:
    """(start, end) ns the file declares (end exclusive; open-ended when undefined)."""
    start = getattr(metadata, "start", None)
    end = getattr(metadata, "end", None)
    if start is None:
        return None
    hi = int(end) if end not in (None, 0, UNDEF_TS) else UNDEF_TS
    return int(start), hi


def screen_mbo(
    array: np.ndarray,
    instruments: InstrumentMap,
    declared: tuple[int, int] | None = None,
    bounds: validation.RecordBounds = validation.RecordBounds(),
) -> Screened:
    """The records worth aggregating, and the count of the others by reason."""
    rejected: Counter[str] = Counter()
    if len(array) == 0:
        return Screened(array, rejected)
    ts = array["ts_event"].astype(np.uint64)
    tb = validation.time_bounds()
    lo = int(tb.earliest.timestamp()) * 1_000_000_000
    hi = int(tb.latest().timestamp()) * 1_000_000_000
    bad_time = (ts < np.uint64(lo)) | (ts > np.uint64(hi))
    if declared is not None:
        d_lo, d_hi = declared
        bad_time |= ts < np.uint64(d_lo)
        if d_hi != UNDEF_TS:
            bad_time |= ts >= np.uint64(d_hi)
    known = np.fromiter(instruments.ids(), dtype=np.uint64) if len(instruments) else None
    if known is None:
        bad_inst = np.ones(len(array), dtype=bool)
    else:
        bad_inst = ~np.isin(array["instrument_id"].astype(np.uint64), known)
    trade = array["action"] == b"T"
    price = array["price"].astype(np.int64)
    max_px = int(bounds.max_price * FIXED_PRICE_SCALE)
    min_px = int(bounds.min_price * FIXED_PRICE_SCALE)
    bad_price = trade & ((price < min_px) | (price > max_px))
    size = array["size"].astype(np.int64)
    bad_size = trade & ((size <= 0) | (size > int(bounds.max_size)))
    for reason, mask in (
        ("time", bad_time),
        ("instrument", bad_inst & ~bad_time),
        ("price", bad_price & ~bad_time & ~bad_inst),
        ("size", bad_size & ~bad_price & ~bad_time & ~bad_inst),
    ):
        n = int(mask.sum())
        if n:
            rejected[reason] = n
    bad = bad_time | bad_inst | bad_price | bad_size
    return Screened(array[~bad] if bad.any() else array, rejected)
