"""`magic8 train`: build the dataset, train the XGBoost hierarchy, write models/.

Levels: default -> strategy -> symbol -> symbol x strategy. Whole days in time order are
split five ways, each with one job (nothing is fitted and judged on the same days):

    train 57% | early stopping 10% | model selection 10% | calibration 8% | test 15%

- boosters fit on train days and stop early on the early-stopping days (the round cap is
  set high enough never to bind; the manifest says if one did);
- a more specific model is kept only if it had enough samples and, on the selection days,
  beat both what would otherwise serve the same rows (its fallback) and the calibrated
  option-math baseline, on Brier score AND log loss;
- each kept model gets a calibration map (isotonic, or Platt when rows are few), per
  strategy where there are enough rows, fitted on the calibration days only; the map
  ships in manifest.json and ModelHierarchy applies it at serve time;
- the test days are touched once, at the end, through ModelHierarchy.load (exactly as the
  service predicts).

Baselines on the test days: majority class, logistic regression on the same features,
and the option-math baseline: the trade's Black-Scholes probability of profit (feature
`pop_spot`) calibrated per strategy by isotonic regression on the training days.

The generated world is trained at several forecast information levels (ml.data.INFO_LEVELS;
default: the shipped `default` and `none`, where the forecast carries no information);
models/ holds the first level's models, the report compares all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xgboost as xgb
from tqdm import tqdm

from magic8.adapters.xgb_native import load_hierarchy
from magic8.domain.features import FEATURE_NAMES, MONOTONE_INCREASING
from magic8.domain.model import MANIFEST, model_keys
from magic8.domain.pricing import STRATEGY_ORDER, infer_vertical_call, structure_extremes
from magic8.domain.risk_reward import PayoffFractions, ev_threshold
from magic8.settings import DEFAULT_MODEL_DIR
from magic8_dev.ml.data import Dataset
from magic8_dev.ml.magic8_csv import MissingColumnError

SPLIT: tuple[tuple[str, float], ...] = (
    ("train", 0.57),
    ("early_stop", 0.10),
    ("select", 0.10),
    ("calibrate", 0.08),
    ("test", 0.15),
)
PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20,
    "lambda": 5.0,
    "max_bin": 64,
    # one thread: on a shared 2-core machine OpenMP's second thread spin-waits and a
    # 0.5 s fit takes 9 s; one thread is also what the Lambda gets
    "nthread": 1,
}
POP_SPOT = FEATURE_NAMES.index("pop_spot")
ISOTONIC_MIN_ROWS = 1000  # below this a calibration map is Platt (2 parameters)
CALIBRATION_GRID = 101  # Platt maps are shipped as this many (x, y) knots


@dataclass(frozen=True)
class Config:
    slots_per_day: int = 3
    day_stride: int = 1
    last_days: int = 0  # 0 = all days
    rounds: int = 2000
    early_stop: int = 40
    min_train: int = 2000
    min_valid: int = 400
    min_class: int = 100
    min_calibration: int = 300  # rows of one strategy for its own calibration map
    seed: int = 7
    info_levels: tuple[str, ...] = ("default", "none")  # the first is shipped
    ev_margin: float = 0.0

    @classmethod
    def fast(cls) -> Config:
        return cls(
            slots_per_day=2,
            day_stride=6,
            last_days=900,
            rounds=400,
            early_stop=15,
            min_train=150,
            min_valid=30,
            min_class=10,
            min_calibration=60,
            info_levels=("default",),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=None, help="train on a Magic8 trade export")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="artifact folder")
    parser.add_argument("--fast", action="store_true", help="tiny dataset, few rounds (tests)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-report", action="store_true", help="skip report.md and plots")
    parser.add_argument(
        "--levels",
        default=None,
        help="forecast information levels of the generated world, comma-separated, the"
        " first is shipped (default: default,none; --fast: default)",
    )
    parser.add_argument(
        "--allow-missing-vix",
        action="store_true",
        help="--csv without a vix column: train anyway with the VIX features at their"
        " documented defaults (VIX 17), and say so in the manifest",
    )


def run(args: argparse.Namespace) -> int:
    cfg = Config.fast() if args.fast else Config()
    cfg = replace(cfg, seed=args.seed)
    if args.levels:
        cfg = replace(cfg, info_levels=tuple(s.strip() for s in args.levels.split(",") if s))
    try:
        result = train(
            args.out,
            csv=args.csv,
            cfg=cfg,
            report=not args.no_report,
            allow_missing_vix=bool(getattr(args, "allow_missing_vix", False)),
        )
    except MissingColumnError as exc:
        print(f"magic8 train: {exc}", file=sys.stderr)
        return 2
    m = result["metrics"]["test"]
    print(
        f"wrote {args.out}  version {result['version']}  level {result['information_level']}"
        f"  test AUC {m['model']['auc']:.4f} (option math {m['option_math']['auc']:.4f},"
        f" logreg {m['logistic_regression']['auc']:.4f})"
        f"  Brier {m['model']['brier']:.4f} (option math {m['option_math']['brier']:.4f})"
        f"  ECE {result['metrics']['ece_test']:.4f}"
        f"  elapsed {result['elapsed_s']['total']:.1f} s"
    )
    return 0


# ---------------------------------------------------------------- dataset


def build_dataset(
    cfg: Config,
    csv: Path | None,
    info_level: str = "default",
    allow_missing_vix: bool = False,
    daily_market: tuple[Any, Any] | None = None,
) -> tuple[Dataset, dict[str, Any]]:
    if csv is not None:
        from magic8_dev.ml.magic8_csv import load_csv_dataset

        ds = load_csv_dataset(csv, allow_missing_vix=allow_missing_vix)
        return ds, {"source": f"csv:{csv.name}", "rows": len(ds.y), **ds.notes}
    from magic8_dev.ml import data as D

    if daily_market is None:
        daily_market = generated_market(cfg)
    daily, market = daily_market
    rng = np.random.default_rng(cfg.seed + 1)  # the same trades' randomness at every level
    day_idx = np.arange(1, len(daily.dates), cfg.day_stride)  # day 0: no previous session
    ds = D.generate_trades(market, day_idx, cfg.slots_per_day, rng, info_level=info_level)
    info = {
        "source": "generated on real arch daily data (see datacard.md)",
        "days": len(day_idx),
        "slots_per_day": cfg.slots_per_day,
        "rows": len(ds.y),
        "vix_proxy": {"a": daily.proxy_coef[0], "b": daily.proxy_coef[1]},
        "vix_real_from": str(daily.dates[np.argmax(daily.vix_real)]),
        "win_rate_by_strategy": {
            STRATEGY_ORDER[c].value: float(ds.y[ds.strategy == c].mean()) for c in range(4)
        },
        "real_win_rate_by_strategy": dict(D.REAL_WIN_RATES),
        **ds.notes,
    }
    return ds, info


def generated_market(cfg: Config) -> tuple[Any, Any]:
    """The real daily data and the generated intraday market (shared by all levels)."""
    from magic8_dev.ml import data as D

    daily = D.load_daily()
    if cfg.last_days:
        daily = daily.tail(cfg.last_days)
    return daily, D.build_market(daily, np.random.default_rng(cfg.seed))


class Split(NamedTuple):
    """Row masks by whole days in time order (see SPLIT)."""

    train: np.ndarray
    early_stop: np.ndarray
    select: np.ndarray
    calibrate: np.ndarray
    test: np.ndarray


def split_days(day: np.ndarray) -> Split:
    days = np.unique(day)
    k = len(SPLIT)
    if len(days) < k:
        raise ValueError(f"need at least {k} distinct days to split, got {len(days)}")
    cum = np.cumsum([share for _, share in SPLIT])[:-1]
    cuts = [int(np.rint(len(days) * c)) for c in cum]
    for i in range(len(cuts)):  # every part gets at least one day
        lo = (cuts[i - 1] if i else 0) + 1
        cuts[i] = max(lo, min(cuts[i], len(days) - (k - 1 - i)))
    bounds = [days[0], *[days[c] for c in cuts], days[-1] + 1]
    return Split(*[(day >= bounds[i]) & (day < bounds[i + 1]) for i in range(k)])


# ---------------------------------------------------------------- metrics


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def f1_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 (and that F1)."""
    from sklearn.metrics import precision_recall_curve

    if y.sum() == 0:
        return 0.5, 0.0
    prec, rec, thr = precision_recall_curve(y, p)
    f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
    i = int(np.argmax(f1[:-1])) if len(thr) else 0
    t = float(thr[i]) if len(thr) else 0.5
    return float(np.clip(t, 0.02, 0.98)), float(f1[i])


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    mean_p, frac, count = [], [], []
    for b in range(bins):
        m = idx == b
        count.append(int(m.sum()))
        mean_p.append(float(p[m].mean()) if m.any() else float("nan"))
        frac.append(float(y[m].mean()) if m.any() else float("nan"))
    n = max(len(y), 1)
    ece = float(
        sum(c / n * abs(a - b) for a, b, c in zip(mean_p, frac, count, strict=True) if c > 0)
    )
    return {"mean_predicted": mean_p, "fraction_positive": frac, "count": count, "ece": ece}


def drift_summary(x: np.ndarray, names: tuple[str, ...], bins: int = 10) -> dict[str, Any]:
    """Per feature: quantile bin edges and expected proportions (for PSI at serve time)."""
    out: dict[str, Any] = {}
    for j, name in enumerate(names):
        col = x[:, j]
        ok = col[np.isfinite(col)]
        nan_share = float(1 - len(ok) / max(len(col), 1))
        if len(ok) == 0:
            out[name] = {"edges": [], "expected": [], "nan_share": nan_share}
            continue
        edges = np.unique(np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1)
        out[name] = {
            "edges": [float(e) for e in edges],
            "expected": [float(c) for c in counts / counts.sum()],
            "nan_share": nan_share,
        }
    return out


# ---------------------------------------------------------------- calibration maps


def fit_calibration(p: np.ndarray, y: np.ndarray, method: str = "auto") -> dict[str, Any]:
    """A monotone map from raw to calibrated probability as (x, y) knots for np.interp:
    isotonic regression, or Platt scaling (logistic on the logit) when rows are few."""
    if method == "auto":
        method = "isotonic" if len(y) >= ISOTONIC_MIN_ROWS else "platt"
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        # centred isotonic regression: knots at each block's mean input, so the map is
        # strictly increasing between them (a plain isotonic step function would give
        # trades that differ only in premium the same probability), and from (0, ~0)
        # to (1, ~1) beyond them
        ir = IsotonicRegression(out_of_bounds="clip", y_min=1e-3, y_max=1 - 1e-3)
        fitted = ir.fit_transform(p, y)
        levels, block = np.unique(fitted, return_inverse=True)
        centres = np.bincount(block, weights=p) / np.bincount(block)
        xs = np.concatenate([[0.0], centres, [1.0]])
        ys = np.concatenate([[min(1e-4, levels[0])], levels, [max(1 - 1e-4, levels[-1])]])
        keep = np.concatenate([[True], np.diff(xs) > 1e-12])
        xs, ys = xs[keep], ys[keep]
    else:
        from sklearn.linear_model import LogisticRegression

        z = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(z[:, None], y)
        xs = np.linspace(0.0, 1.0, CALIBRATION_GRID)
        zx = np.log(np.clip(xs, 1e-6, 1 - 1e-6) / (1 - np.clip(xs, 1e-6, 1 - 1e-6)))
        ys = lr.predict_proba(zx[:, None])[:, 1]
    return {
        "method": method,
        "n": len(y),
        "x": [float(v) for v in xs],
        "y": [float(v) for v in ys],
    }


def apply_map(spec: dict[str, Any], p: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.interp(p, np.asarray(spec["x"]), np.asarray(spec["y"]))
    return out


def fit_option_math(
    x: np.ndarray, y: np.ndarray, strat_names: np.ndarray
) -> dict[str, dict[str, Any]]:
    """The option-math baseline: per strategy, an isotonic map from the Black-Scholes
    probability of profit (feature pop_spot) to the observed win rate."""
    out: dict[str, dict[str, Any]] = {}
    pop = x[:, POP_SPOT]
    for s in sorted(set(strat_names.tolist())):
        m = (strat_names == s) & np.isfinite(pop)
        if m.sum() < 20 or len(np.unique(y[m])) < 2:
            out[s] = {
                "prior": float(y[strat_names == s].mean()) if (strat_names == s).any() else 0.5
            }
            continue
        spec = fit_calibration(pop[m], y[m], "isotonic")
        spec["prior"] = float(y[m].mean())
        out[s] = spec
    return out


def option_math_predict(
    maps: dict[str, dict[str, Any]], x: np.ndarray, strat_names: np.ndarray, prior: float
) -> np.ndarray:
    pop = x[:, POP_SPOT]
    out = np.full(len(x), prior)
    for s, spec in maps.items():
        m = strat_names == s
        out[m] = spec["prior"]
        if "x" in spec:
            ok = m & np.isfinite(pop)
            out[ok] = apply_map(spec, pop[ok])
    return out


# ---------------------------------------------------------------- payoff


def trade_extremes(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(max profit, max loss) per share of each row, as magic8.domain.risk_reward."""
    t = ds.trades
    if t is None:
        n = len(ds.y)
        return np.full(n, np.nan), np.full(n, np.nan)
    is_call = np.where(
        np.isfinite(t.option_call),
        t.option_call,
        infer_vertical_call(t.action_sell, t.strikes, t.predicted),
    )
    vmin, vmax = structure_extremes(t.strategy, t.strikes, is_call)
    sell = t.action_sell > 0.5
    max_profit = np.where(sell, t.premium - vmin, vmax - t.premium)
    max_loss = np.where(sell, vmax - t.premium, t.premium - vmin)
    return max_profit, max_loss


def payoff_fractions(
    ds: Dataset, mask: np.ndarray, strat_names: np.ndarray, w: np.ndarray, loss: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per strategy: the mean share of max profit a win makes and of max loss a loss
    loses, on the given rows (generated data only: a CSV's profit is in dollars)."""
    out: dict[str, dict[str, float]] = {}
    if not ds.notes.get("profit_per_share", False):
        return out
    for s in sorted(set(strat_names.tolist())):
        m = mask & (strat_names == s) & np.isfinite(w) & np.isfinite(loss)
        win = m & (ds.y > 0.5) & (w > 0)
        lose = m & (ds.y < 0.5) & (loss > 0)
        if win.sum() < 20 or lose.sum() < 20:
            continue
        out[s] = {
            "win_fraction": float(np.clip(np.mean(ds.profit[win] / w[win]), 0.01, 1.0)),
            "loss_fraction": float(np.clip(np.mean(-ds.profit[lose] / loss[lose]), 0.01, 1.0)),
        }
    return out


# ---------------------------------------------------------------- training


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    cfg: Config,
) -> xgb.Booster:
    dtrain = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    dvalid = xgb.DMatrix(xv, label=yv, feature_names=list(FEATURE_NAMES))
    monotone = (
        "(" + ",".join("1" if name in MONOTONE_INCREASING else "0" for name in FEATURE_NAMES) + ")"
    )
    params = {
        **PARAMS,
        "seed": cfg.seed,
        "base_score": float(np.clip(y.mean(), 0.02, 0.98)),
        "monotone_constraints": monotone,
    }
    return xgb.train(
        params,
        dtrain,
        num_boost_round=cfg.rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=cfg.early_stop,
        verbose_eval=False,
    )


def _predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(
        booster.inplace_predict(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float64
    )
    return out


def _file_name(key: str) -> str:
    return key.replace(":", "__").replace(" ", "_") + ".ubj"


def _routes(kept: set[str], symbols: np.ndarray, strat_names: np.ndarray) -> np.ndarray:
    """The serving key of each row (as ModelHierarchy.route)."""
    memo: dict[tuple[str, str], str] = {}
    out = np.empty(len(symbols), dtype=object)
    for i, (sy, st) in enumerate(zip(symbols.tolist(), strat_names.tolist(), strict=True)):
        key = memo.get((sy, st))
        if key is None:
            key = memo[(sy, st)] = next(k for k in model_keys(sy, st) if k in kept)
        out[i] = key
    return out


def train(
    out_dir: Path,
    csv: Path | None = None,
    cfg: Config | None = None,
    report: bool = True,
    progress: bool = True,
    allow_missing_vix: bool = False,
) -> dict[str, Any]:
    """Train every information level (a CSV has one: its own), write the first to
    out_dir with the report comparing them; returns the shipped manifest."""
    cfg = cfg or Config()
    t0 = time.perf_counter()
    c0 = time.process_time()
    levels = ["csv"] if csv is not None else list(cfg.info_levels)
    if not levels:
        raise ValueError("no information level to train")
    bar = tqdm(total=len(levels) * 30, desc="magic8 train", unit="step", disable=not progress)
    market = None if csv is not None else generated_market(cfg)
    results: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, xgb.Booster]]] = {}
    with tempfile.TemporaryDirectory(prefix="magic8-train-") as scratch:
        for i, level in enumerate(levels):
            target = Path(out_dir) if i == 0 else Path(scratch) / level
            results[level] = _train_level(
                target, csv, cfg, level, allow_missing_vix, market, bar, levels_left=len(levels) - i
            )
    shipped, evaluation, kept = results[levels[0]]
    shipped["levels"] = {level: _level_summary(man) for level, (man, _, _) in results.items()}
    out_dir = Path(out_dir)
    if report:
        bar.set_postfix_str("report")
        from magic8_dev.ml.report import write_report

        write_report(out_dir, shipped, evaluation, kept, {k: v[1] for k, v in results.items()})
        datacard = Path(__file__).with_name("datacard.md")
        if datacard.exists() and csv is None:
            shutil.copyfile(datacard, out_dir / "datacard.md")
        bar.update(1)
    bar.close()
    shipped["elapsed_s"]["total"] = time.perf_counter() - t0
    shipped["elapsed_s"]["cpu"] = time.process_time() - c0
    (out_dir / MANIFEST).write_text(json.dumps(shipped, indent=1))
    print(
        f"training: {len(levels)} level(s), total {shipped['elapsed_s']['total']:.1f} s wall"
        f" ({shipped['elapsed_s']['cpu']:.1f} s CPU); shipped level {levels[0]}:"
        f" {len(kept)} models kept of {len(shipped['candidates'])}"
    )
    return shipped


def _level_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    m = manifest["metrics"]
    return {
        "information_level": manifest["information_level"],
        "test": m["test"],
        "test_per_strategy": m["test_per_strategy"],
        "ece_test": m["ece_test"],
        "ece_test_by_strategy": m["ece_test_by_strategy"],
        "pnl_test": m["pnl_test"],
        "models_kept": sorted(manifest["models"]),
        "direction_auc_market_features": manifest["data"].get("direction_auc_market_features"),
    }


def _train_level(
    out_dir: Path,
    csv: Path | None,
    cfg: Config,
    level: str,
    allow_missing_vix: bool,
    market: tuple[Any, Any] | None,
    bar: tqdm,
    levels_left: int,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, xgb.Booster]]:
    t0 = time.perf_counter()
    c0 = time.process_time()
    strategies = [s.value for s in STRATEGY_ORDER]
    bar.set_postfix_str(f"{level}: data")
    ds, data_info = build_dataset(cfg, csv, level, allow_missing_vix, market)
    t_data = time.perf_counter() - t0
    sp = split_days(ds.day)
    tr, es, sel, cal, te = sp
    strat_names = np.array([strategies[int(c)] for c in ds.strategy])
    symbols = sorted(set(ds.symbol.tolist()))
    if csv is None:
        from magic8_dev.ml.data import direction_auc

        data_info["direction_auc_market_features"] = direction_auc(ds, tr, te, cfg.seed)

    candidates: list[tuple[str, np.ndarray]] = [("default", np.ones(len(ds.y), dtype=bool))]
    candidates += [(f"strategy:{s}", strat_names == s) for s in strategies]
    candidates += [(f"symbol:{s}", ds.symbol == s) for s in symbols]
    candidates += [
        (f"symbol_strategy:{sy}:{st}", (ds.symbol == sy) & (strat_names == st))
        for sy in symbols
        for st in strategies
    ]
    bar.total = bar.n + len(candidates) + 4 + (levels_left - 1) * (len(candidates) + 4) + 1
    bar.refresh()

    # the option-math baseline, calibrated on the training days
    option_math = fit_option_math(ds.X[tr], ds.y[tr], strat_names[tr])
    prior = float(ds.y[tr].mean())
    p_om = option_math_predict(option_math, ds.X, strat_names, prior)
    # a stronger comparator for the report: the same map fitted on the calibration days
    # (the days the model's own calibration sees, closest to the test days)
    option_math_recent = fit_option_math(ds.X[cal], ds.y[cal], strat_names[cal])
    p_om_recent = option_math_predict(
        option_math_recent, ds.X, strat_names, float(ds.y[cal].mean())
    )

    t1 = time.perf_counter()
    served = np.full(len(ds.y), np.nan)  # raw prediction of the current hierarchy (es+sel)
    kept: dict[str, xgb.Booster] = {}
    log: dict[str, dict[str, Any]] = {}
    for key, mask in candidates:
        bar.set_postfix_str(f"{level}: {key}")
        mtr, mes, msel = mask & tr, mask & es, mask & sel
        ytr, yes, ysel = ds.y[mtr], ds.y[mes], ds.y[msel]
        info: dict[str, Any] = {
            "n_train": int(mtr.sum()),
            "n_early_stop": int(mes.sum()),
            "n_select": int(msel.sum()),
        }

        def both(y: np.ndarray) -> int:
            return int(min(y.sum(), len(y) - y.sum()))

        enough = key == "default" or (
            mtr.sum() >= cfg.min_train
            and mes.sum() >= cfg.min_valid
            and msel.sum() >= cfg.min_valid
            and both(ytr) >= cfg.min_class
            and both(yes) >= cfg.min_class // 4
            and both(ysel) >= cfg.min_class // 4
        )
        if not enough:
            info.update(kept=False, reason="too few samples")
            log[key] = info
            bar.update(1)
            continue
        tf = time.perf_counter()
        booster = _fit(ds.X[mtr], ytr, ds.X[mes], yes, cfg)
        info["fit_s"] = round(time.perf_counter() - tf, 2)
        info["best_iteration"] = int(booster.best_iteration)
        info["round_cap"] = cfg.rounds
        info["hit_round_cap"] = bool(booster.best_iteration >= cfg.rounds - 1)
        booster = booster[: booster.best_iteration + 1]  # only the trees used
        pe = _predict(booster, ds.X[mes | msel])
        p_sel = _predict(booster, ds.X[msel])
        info["select_logloss"] = logloss(ysel, p_sel)
        info["select_brier"] = brier(ysel, p_sel)
        info["option_math_select_logloss"] = logloss(ysel, p_om[msel])
        info["option_math_select_brier"] = brier(ysel, p_om[msel])
        beats_om = (
            info["select_logloss"] < info["option_math_select_logloss"]
            and info["select_brier"] < info["option_math_select_brier"]
        )
        info["beats_option_math_on_selection"] = bool(beats_om)
        if key == "default":
            keep = True  # the last resort always exists; the report says if it loses
        else:
            info["fallback_select_logloss"] = logloss(ysel, served[msel])
            info["fallback_select_brier"] = brier(ysel, served[msel])
            beats_fb = (
                info["select_logloss"] < info["fallback_select_logloss"]
                and info["select_brier"] < info["fallback_select_brier"]
            )
            keep = beats_fb and beats_om
            if not beats_fb:
                info["reason"] = "not better than its fallback on the selection days"
            elif not beats_om:
                info["reason"] = "not better than the option-math baseline on the selection days"
        info["kept"] = bool(keep)
        if keep:
            kept[key] = booster
            served[mes | msel] = pe
        log[key] = info
        bar.update(1)
    t_fit = time.perf_counter() - t1

    # calibration maps, fitted on the calibration days only, on the rows each model serves
    bar.set_postfix_str(f"{level}: calibrate")
    routes = _routes(set(kept), ds.symbol, strat_names)
    raw = np.full(len(ds.y), np.nan)
    need = cal | sel | te
    for key, booster in kept.items():
        m = need & (routes == key)
        if m.any():
            raw[m] = _predict(booster, ds.X[m])
    calibration: dict[str, dict[str, Any]] = {}
    for key in kept:
        m = cal & (routes == key)
        entry: dict[str, Any] = {}
        if m.sum() >= cfg.min_calibration and 0 < ds.y[m].sum() < m.sum():
            entry["all"] = fit_calibration(raw[m], ds.y[m])
        else:
            entry["all"] = None
        entry["by_strategy"] = {}
        for s in strategies:
            ms = m & (strat_names == s)
            yk = ds.y[ms]
            if ms.sum() >= cfg.min_calibration and min(yk.sum(), len(yk) - yk.sum()) >= 10:
                entry["by_strategy"][s] = fit_calibration(raw[ms], yk)
        calibration[key] = entry
    bar.update(1)

    # payoff fractions (expected value) from the training days
    w_all, l_all = trade_extremes(ds)
    payoff = payoff_fractions(ds, tr, strat_names, w_all, l_all)

    # write artifacts
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ubj"):
        old.unlink()
    digest = hashlib.sha256()
    models: dict[str, Any] = {}
    for key, booster in kept.items():
        fname = _file_name(key)
        booster.save_model(str(out_dir / fname))
        digest.update((out_dir / fname).read_bytes())
        models[key] = {
            "file": fname,
            "threshold": 0.5,
            "thresholds_by_strategy": {},
            "calibration": calibration[key]["all"],
            "calibration_by_strategy": calibration[key]["by_strategy"],
            **log[key],
        }
    digest.update(json.dumps(calibration, sort_keys=True).encode())
    digest.update(json.dumps(payoff, sort_keys=True).encode())
    version = datetime.now(UTC).strftime("%Y%m%d.%H%M") + "-" + digest.hexdigest()[:8]

    def day_str(i: int) -> str:
        return str(ds.dates[i]) if len(ds.dates) else str(i)

    manifest: dict[str, Any] = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "information_level": {
            "name": level,
            "direction_agreement_target": data_info.get("info_direction_agreement_target"),
            "forecast_direction_agreement": data_info.get("forecast_direction_agreement"),
            "forecast_corr": data_info.get("forecast_corr"),
        },
        "feature_names": list(FEATURE_NAMES),
        "monotone_increasing": list(MONOTONE_INCREASING),
        "models": models,
        "candidates": log,
        "hierarchy": [
            "symbol_strategy:<SYMBOL>:<Strategy>",
            "symbol:<SYMBOL>",
            "strategy:<Strategy>",
            "default",
        ],
        "params": {**PARAMS, "rounds": cfg.rounds, "early_stopping": cfg.early_stop},
        "min_samples": {"train": cfg.min_train, "valid": cfg.min_valid, "per_class": cfg.min_class},
        "payoff": payoff,
        # training win rate per hierarchy key (what cached answers decay toward at serve
        # time, magic8.domain.decay), for every key with at least min_class training rows
        "base_rates": {
            key: float(ds.y[tr & mask].mean())
            for key, mask in candidates
            if int((tr & mask).sum()) >= cfg.min_class
        },
        "ev_margin": cfg.ev_margin,
        "option_math": option_math,
        "data": data_info,
        "split": {
            name: {
                "share": share,
                "days": [day_str(int(ds.day[m].min())), day_str(int(ds.day[m].max()))],
                "rows": int(m.sum()),
            }
            for (name, share), m in zip(SPLIT, sp, strict=True)
        },
    }
    manifest["training_window"] = {
        "train": manifest["split"]["train"]["days"],
        "valid": [
            manifest["split"]["early_stop"]["days"][0],
            manifest["split"]["calibrate"]["days"][1],
        ],
        "test": manifest["split"]["test"]["days"],
        "rows": {
            "train": int(tr.sum()),
            "valid": int((es | sel | cal).sum()),
            "test": int(te.sum()),
        },
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))

    # F1 thresholds (the old decision rule, kept for comparison) on the selection days,
    # from the calibrated answers as served
    hier = load_hierarchy(out_dir)
    ans = hier.predict(ds.X[sel], ds.symbol[sel].tolist(), strat_names[sel].tolist())
    ps = np.array([a.win_probability for a in ans])
    rs = np.array([a.model_type for a in ans])
    ys, ss = ds.y[sel], strat_names[sel]
    for key in models:
        m = rs == key
        if m.sum() == 0:
            continue
        models[key]["threshold"], models[key]["select_f1"] = f1_threshold(ys[m], ps[m])
        for s in strategies:
            ms = m & (ss == s)
            if ms.sum() >= max(cfg.min_valid // 4, 20) and 0 < ys[ms].sum() < ms.sum():
                models[key]["thresholds_by_strategy"][s] = f1_threshold(ys[ms], ps[ms])[0]
    manifest["thresholds"] = {
        key: {"overall": spec["threshold"], "by_strategy": spec["thresholds_by_strategy"]}
        for key, spec in models.items()
    }
    manifest["drift"] = drift_summary(ds.X[tr], FEATURE_NAMES)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    bar.update(1)

    # test: the hierarchy as served vs the baselines on the same features and days
    bar.set_postfix_str(f"{level}: evaluate")
    t2 = time.perf_counter()
    evaluation = evaluate(
        ds, sp, strat_names, out_dir, p_om, w_all, l_all, payoff, cfg, p_om_recent
    )
    manifest["metrics"] = evaluation["metrics"]
    t_eval = time.perf_counter() - t2
    manifest["elapsed_s"] = {
        "data": t_data,
        "fit": t_fit,
        "evaluate": t_eval,
        "total": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    bar.update(2)
    evaluation["level"] = level
    evaluation["manifest"] = manifest
    return manifest, evaluation, kept


def evaluate(
    ds: Dataset,
    sp: Split,
    strat_names: np.ndarray,
    out_dir: Path,
    p_om_all: np.ndarray,
    w_all: np.ndarray,
    l_all: np.ndarray,
    payoff: dict[str, dict[str, float]],
    cfg: Config,
    p_om_recent_all: np.ndarray | None = None,
) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, te = sp.train, sp.test
    hier = load_hierarchy(out_dir)
    xt, yt = ds.X[te], ds.y[te]
    st = strat_names[te]
    answers = hier.predict(xt, ds.symbol[te].tolist(), st.tolist())
    p_model = np.array([a.win_probability for a in answers])
    thr_f1 = np.array([a.threshold for a in answers])
    routes = np.array([a.model_type for a in answers])
    p_om = p_om_all[te]
    p_omr = p_om_recent_all[te] if p_om_recent_all is not None else p_om

    lr = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    lr.fit(ds.X[tr], ds.y[tr])
    p_lr = lr.predict_proba(xt)[:, 1]
    prior = float(ds.y[tr].mean())
    p_maj = np.full(len(yt), prior)
    majority_label = 1.0 if prior >= 0.5 else 0.0

    # the EV rule: take a trade when p >= its EV-breakeven win probability + margin
    wt, lt = w_all[te], l_all[te]
    thr_ev = np.full(len(yt), np.nan)
    for s in sorted(set(st.tolist())):
        m = st == s
        frac = PayoffFractions(**payoff.get(s, {}))
        thr_ev[m] = ev_threshold(wt[m], lt[m], frac, cfg.ev_margin)
    take_ev = p_model >= np.where(np.isfinite(thr_ev), thr_ev, thr_f1)
    take_f1 = p_model >= thr_f1
    per_share = bool(ds.notes.get("profit_per_share", False))
    dollars = ds.profit[te] * (100.0 if per_share else 1.0)
    on_risk = ds.profit[te] / np.where(lt > 0, lt, np.nan) if per_share else None

    def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        return {"auc": auc(y, p), "brier": brier(y, p), "logloss": logloss(y, p)}

    def pnl(mask: np.ndarray, take: np.ndarray) -> dict[str, Any]:
        t = mask & take
        out: dict[str, Any] = {
            "taken": int(t.sum()),
            "share_taken": float(t.sum() / max(mask.sum(), 1)),
            "win_rate": float(yt[t].mean()) if t.any() else float("nan"),
            "pnl_per_trade": float(dollars[t].mean()) if t.any() else float("nan"),
            "pnl_total": float(dollars[t].sum()),
        }
        if on_risk is not None:
            ok = t & np.isfinite(on_risk)
            out["pnl_per_max_loss"] = float(on_risk[ok].mean()) if ok.any() else float("nan")
        return out

    def block(mask: np.ndarray) -> dict[str, Any]:
        y = yt[mask]
        pred = (p_model[mask] >= thr_f1[mask]).astype(float)
        tp = float((pred * y).sum())
        f1 = 2 * tp / max(pred.sum() + y.sum(), 1e-12)
        return {
            "n": int(mask.sum()),
            "win_rate": float(y.mean()) if mask.any() else float("nan"),
            "model": {
                **scores(y, p_model[mask]),
                "accuracy_at_threshold": float((pred == y).mean()),
                "f1_at_threshold": f1,
                "ece": reliability(y, p_model[mask])["ece"],
            },
            "option_math": scores(y, p_om[mask]),
            "option_math_recalibrated": scores(y, p_omr[mask]),
            "logistic_regression": scores(y, p_lr[mask]),
            "majority": {
                "auc": 0.5,
                "brier": brier(y, p_maj[mask]),
                "logloss": logloss(y, p_maj[mask]),
                "accuracy": float((y == majority_label).mean()),
            },
        }

    everything = np.ones(len(yt), dtype=bool)
    per_strategy = {s: block(st == s) for s in sorted(set(st.tolist()))}
    per_level: dict[str, int] = {}
    for r in routes:
        lvl = r.split(":")[0]
        per_level[lvl] = per_level.get(lvl, 0) + 1
    rel = reliability(yt, p_model)
    rules: dict[str, dict[str, Any]] = {}
    for name, take in (("take_all", everything), ("f1_rule", take_f1), ("ev_rule", take_ev)):
        rules[name] = {"all": pnl(everything, take)}
        for s in per_strategy:
            rules[name][s] = pnl(st == s, take)
    pnl_rules = {
        "unit": "dollars per trade, 1 contract (x100)" if per_share else "the export's profit",
        "rules": rules,
        "ev_margin": cfg.ev_margin,
    }
    metrics = {
        "test": block(everything),
        "test_per_strategy": per_strategy,
        "test_rows_by_level": per_level,
        "ece_test": rel["ece"],
        "ece_test_by_strategy": {s: b["model"]["ece"] for s, b in per_strategy.items()},
        "reliability_test": rel,
        "reliability_test_by_strategy": {
            s: reliability(yt[st == s], p_model[st == s]) for s in per_strategy
        },
        "reliability_test_option_math": reliability(yt, p_om),
        "reliability_test_logreg": reliability(yt, p_lr),
        "pnl_test": pnl_rules,
    }
    return {
        "metrics": metrics,
        "y": yt,
        "p_model": p_model,
        "p_lr": p_lr,
        "p_option_math": p_om,
        "strategy": st,
        "routes": routes,
    }
