"""The bot's request shape: names it uses for trade types, symbols and actions, and the
standard Magic8 strikes and action a trade gets when the request leaves them out.

One source for the app (TradeRequest's validators), the API Gateway request models
(infra/constructs/prediction_api.py builds its JSON schema from `edge_trade_schema`) and
the README tables (`strike_table_markdown`, `alias_table_markdown`).

Aliases: a name is folded (case, blanks, "_", "-", "/" and "." removed; symbols also drop a
leading "$" or "^" and an " INDEX" suffix) and looked up in the tables below. A trade-type
alias may carry an option type ("Put Spread" is a Vertical of puts) and an action
("Credit Spread" is a SELL Vertical); what the request says itself wins.

Standard strikes (when `strikes` is missing or null), around the predicted price P rounded
to the symbol's strike grid, with widths in SPX points times the symbol's scale (rounded
to the grid, at least one step):

- Butterfly (BUY): P - 50, P, P + 50 (the bot's example: 5805/5855/5905).
- Iron Condor (SELL): shorts at P -/+ 20, wings 5 wide (the bot's example:
  5830/5835/5875/5880).
- Sonar (SELL): Magic8's wider iron condor: shorts at P -/+ 40, wings 10 wide.
- Vertical (SELL): a spread 5 wide, 10 to 15 from P: strikes P - 15, P - 10 (a put credit
  spread; a BUY is the call debit spread there), or P + 10, P + 15 when option_type names
  the other kind (SELL calls, BUY puts). Either way the trade wins if P is right.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

# Magic8's times are US/Eastern: a timestamp without a zone is read in this zone. This
# ZoneInfo object marks such a timestamp (a parsed offset is never this object).
EASTERN = ZoneInfo("America/New_York")

# --- aliases ------------------------------------------------------------------------------

# folded name -> (strategy, option_type hint or None, action hint or None)
STRATEGY_ALIASES: dict[str, tuple[str, str | None, str | None]] = {
    "butterfly": ("Butterfly", None, None),
    "fly": ("Butterfly", None, None),
    "bfly": ("Butterfly", None, None),
    "butterflyspread": ("Butterfly", None, None),
    "callbutterfly": ("Butterfly", "call", None),
    "putbutterfly": ("Butterfly", "put", None),
    "ironcondor": ("Iron Condor", None, None),
    "ic": ("Iron Condor", None, None),
    "condor": ("Iron Condor", None, None),
    "vertical": ("Vertical", None, None),
    "verticalspread": ("Vertical", None, None),
    "spread": ("Vertical", None, None),
    "putspread": ("Vertical", "put", None),
    "callspread": ("Vertical", "call", None),
    "putvertical": ("Vertical", "put", None),
    "callvertical": ("Vertical", "call", None),
    "creditspread": ("Vertical", None, "SELL"),
    "debitspread": ("Vertical", None, "BUY"),
    "putcreditspread": ("Vertical", "put", "SELL"),
    "callcreditspread": ("Vertical", "call", "SELL"),
    "putdebitspread": ("Vertical", "put", "BUY"),
    "calldebitspread": ("Vertical", "call", "BUY"),
    "bullputspread": ("Vertical", "put", "SELL"),
    "bearcallspread": ("Vertical", "call", "SELL"),
    "bullcallspread": ("Vertical", "call", "BUY"),
    "bearputspread": ("Vertical", "put", "BUY"),
    "sonar": ("Sonar", None, None),
}

SYMBOL_ALIASES: dict[str, str] = {
    "SPX": "SPX",
    "SPXW": "SPX",
    "SPXPM": "SPX",
    "GSPC": "SPX",
    "SPY": "SPY",
    "XSP": "XSP",
    "NDX": "NDX",
    "NDXP": "NDX",
    "NQX": "NDX",
    "QQQ": "QQQ",
    "RUT": "RUT",
    "RUTW": "RUT",
}

ACTION_ALIASES: dict[str, str] = {
    "buy": "BUY",
    "b": "BUY",
    "long": "BUY",
    "debit": "BUY",
    "bto": "BUY",
    "buytoopen": "BUY",
    "sell": "SELL",
    "s": "SELL",
    "short": "SELL",
    "credit": "SELL",
    "sto": "SELL",
    "selltoopen": "SELL",
}

_FOLD = re.compile(r"[\s_\-/.]+")


def fold(name: str) -> str:
    return _FOLD.sub("", name).casefold()


def strategy_alias(raw: object) -> tuple[str, str | None, str | None] | None:
    if not isinstance(raw, str):
        return None
    return STRATEGY_ALIASES.get(fold(raw))


def canonical_strategy(raw: object) -> object:
    """The Strategy value for a known alias, else `raw` unchanged (the enum rejects it)."""
    hit = strategy_alias(raw)
    return hit[0] if hit else raw


def canonical_symbol(raw: object) -> object:
    if not isinstance(raw, str):
        return raw
    s = raw.strip().upper()
    s = s.removesuffix(" INDEX").removesuffix(".X").lstrip("$^").strip()
    return SYMBOL_ALIASES.get(_FOLD.sub("", s), raw)


def canonical_action(raw: object) -> object:
    if not isinstance(raw, str):
        return raw
    return ACTION_ALIASES.get(fold(raw), raw)


# --- standard strikes ---------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolScale:
    grid: float  # strike increment
    scale: float  # widths relative to SPX points


SYMBOL_SCALES: dict[str, SymbolScale] = {
    "SPX": SymbolScale(5.0, 1.0),
    "XSP": SymbolScale(1.0, 0.1),
    "SPY": SymbolScale(1.0, 0.1),
    "NDX": SymbolScale(10.0, 3.5),
    "QQQ": SymbolScale(1.0, 0.085),
    "RUT": SymbolScale(5.0, 0.35),
}


@dataclass(frozen=True)
class StrikeTemplate:
    """In SPX points (scaled per symbol): `distance` from P to the nearest strike (0 for
    the butterfly's body) and the `wing` width; the default action."""

    action: str
    distance: float
    wing: float
    description: str


STRIKE_TEMPLATES: dict[str, StrikeTemplate] = {
    "Butterfly": StrikeTemplate("BUY", 0.0, 50.0, "wings 50, centred on P"),
    "Iron Condor": StrikeTemplate("SELL", 20.0, 5.0, "shorts P -/+ 20, wings 5"),
    "Sonar": StrikeTemplate("SELL", 40.0, 10.0, "shorts P -/+ 40, wings 10"),
    "Vertical": StrikeTemplate("SELL", 10.0, 5.0, "P - 15 / P - 10 (put credit), 5 wide"),
}


def default_action(strategy: str) -> str:
    return STRIKE_TEMPLATES[strategy].action


def _scaled(points: float, sc: SymbolScale) -> float:
    """A width in SPX points for this symbol, on its grid (at least one step, keeping sign)."""
    if points == 0:
        return 0.0
    steps = max(1, round(abs(points) * sc.scale / sc.grid))
    return math.copysign(steps * sc.grid, points)


def standard_strikes(
    strategy: str,
    symbol: str,
    predicted_price: float,
    option_type: str | None = None,
    action: str | None = None,
) -> list[float]:
    """The strategy's standard Magic8 strikes around `predicted_price` (see module doc)."""
    sc = SYMBOL_SCALES[symbol]
    centre = round(predicted_price / sc.grid) * sc.grid
    tpl = STRIKE_TEMPLATES[strategy]
    d, w = _scaled(tpl.distance, sc), _scaled(tpl.wing, sc)
    offsets: list[float]
    if strategy == "Butterfly":
        offsets = [-w, 0.0, w]
    elif strategy == "Vertical":
        offsets = [-(d + w), -d]
        # below P: a SELL put (credit) or a BUY call (debit) spread, both bullish on P;
        # above P when option_type says the other kind
        kind = (option_type or "").strip().lower()[:1]
        if kind == ("c" if (action or "SELL") == "SELL" else "p"):
            offsets = [d, d + w]
    else:
        offsets = [-(d + w), -d, d, d + w]
    # keep strikes positive (tiny predicted prices): shift the structure up
    low = centre + min(offsets)
    if low <= 0:
        centre += sc.grid * math.ceil((sc.grid - low) / sc.grid)
    return [round(centre + o, 6) for o in offsets]


def eastern_if_naive(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=EASTERN)
    return value


def zone_was_assumed(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is EASTERN


def trade_identity(
    strategy: str, action: str, strikes: list[float], option_type: str | None
) -> str:
    """A trade's identity within its symbol x strategy series: action, option kind and the
    sorted strikes, e.g. "BUY 5805/5855/5905" or "SELL P 5840/5845"."""
    kind = (option_type or "").strip().upper()[:1]
    ks = "/".join(f"{k:g}" for k in sorted(strikes))
    return f"{action} {kind} {ks}" if kind and strategy != "Iron Condor" else f"{action} {ks}"


def normalise_request(data: Any) -> Any:
    """Before validation: aliases to canonical values, trade-type hints (option type,
    action) filled in when the request does not say, and null strikes/action treated as
    missing (so the defaults apply)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    hit = strategy_alias(out.get("strategy"))
    if hit is not None:
        out["strategy"], option_hint, action_hint = hit
        if option_hint and out.get("option_type") is None:
            out["option_type"] = option_hint
        if action_hint and out.get("action") is None:
            out["action"] = action_hint
    if "symbol" in out:
        out["symbol"] = canonical_symbol(out["symbol"])
    for key in ("strikes", "action"):
        if key in out and out[key] is None:
            del out[key]
    if "action" in out:
        out["action"] = canonical_action(out["action"])
    return out


# --- documentation and the edge schema ----------------------------------------------------


def strike_table_markdown(reference: dict[str, float] | None = None) -> str:
    """Per strategy and symbol: the action and the strikes placed around a typical price."""
    prices = reference or {
        "SPX": 5855.0,
        "XSP": 585.5,
        "SPY": 585.0,
        "NDX": 21000.0,
        "QQQ": 512.0,
        "RUT": 2300.0,
    }
    rows = [
        "| strategy | action | rule | "
        + " | ".join(f"{s} (P={p:g})" for s, p in prices.items())
        + " |"
    ]
    rows.append("|" + "---|" * (3 + len(prices)))
    for strat, tpl in STRIKE_TEMPLATES.items():
        cells = [
            "/".join(f"{k:g}" for k in standard_strikes(strat, sym, p)) for sym, p in prices.items()
        ]
        rows.append(f"| {strat} | {tpl.action} | {tpl.description} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def alias_table_markdown() -> str:
    by_target: dict[str, list[str]] = {}
    for alias, (strat, otype, action) in STRATEGY_ALIASES.items():
        extra = ", ".join(x for x in (otype, action) if x)
        by_target.setdefault(strat, []).append(f"{alias}" + (f" ({extra})" if extra else ""))
    lines = [f"- {k}: " + ", ".join(v) for k, v in by_target.items()]
    syms: dict[str, list[str]] = {}
    for alias, sym in SYMBOL_ALIASES.items():
        syms.setdefault(sym, []).append(alias)
    lines += [f"- {k}: " + ", ".join(v) + ", with $ or ^ prefix" for k, v in syms.items()]
    return "\n".join(lines)
