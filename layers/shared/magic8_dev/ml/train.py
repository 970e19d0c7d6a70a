"""`magic8 train`: build the dataset, train the XGBoost hierarchy, write models/.

Levels: default -> strategy -> symbol -> symbol x strategy. A more specific model is
kept only if it had enough samples (both classes) and beat, on validation log-loss, what
would otherwise serve the same rows. Split: whole days in time order
(train 70% / validation 15% / test 15%). Thresholds: F1-optimal on validation, per model
and per strategy. Test metrics are measured by loading the written artifacts through
ModelHierarchy, exactly as the service does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from tqdm import tqdm

from magic8.adapters.xgb_native import load_hierarchy
from magic8.domain.features import FEATURE_NAMES, MONOTONE_INCREASING
from magic8.domain.model import MANIFEST
from magic8.domain.pricing import STRATEGY_ORDER
from magic8.settings import DEFAULT_MODEL_DIR
from magic8_dev.ml.data import Dataset

SPLIT = (0.70, 0.15, 0.15)
PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.15,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 64,
    # one thread: on a shared 2-core machine OpenMP's second thread spin-waits and a
    # 0.5 s fit takes 9 s; one thread is also what the Lambda gets
    "nthread": 1,
}


@dataclass(frozen=True)
class Config:
    slots_per_day: int = 3
    day_stride: int = 1
    last_days: int = 0  # 0 = all days
    rounds: int = 300
    early_stop: int = 25
    min_train: int = 2000
    min_valid: int = 400
    min_class: int = 100
    seed: int = 7

    @classmethod
    def fast(cls) -> Config:
        return cls(
            slots_per_day=2,
            day_stride=6,
            last_days=700,
            rounds=30,
            early_stop=10,
            min_train=150,
            min_valid=30,
            min_class=10,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=None, help="train on a Magic8 trade export")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR, help="artifact folder")
    parser.add_argument("--fast", action="store_true", help="tiny dataset, few rounds (tests)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-report", action="store_true", help="skip report.md and plots")


def run(args: argparse.Namespace) -> int:
    cfg = Config.fast() if args.fast else Config()
    cfg = Config(**{**cfg.__dict__, "seed": args.seed})
    result = train(args.out, csv=args.csv, cfg=cfg, report=not args.no_report)
    m = result["metrics"]["test"]
    print(
        f"wrote {args.out}  version {result['version']}  test AUC {m['model']['auc']:.4f}"
        f" (logreg {m['logistic_regression']['auc']:.4f}, majority 0.5)"
        f"  Brier {m['model']['brier']:.4f}  elapsed {result['elapsed_s']['total']:.1f} s"
    )
    return 0


# ---------------------------------------------------------------- dataset


def build_dataset(
    cfg: Config, csv: Path | None, bar: tqdm | None = None
) -> tuple[Dataset, dict[str, Any]]:
    if csv is not None:
        from magic8_dev.ml.magic8_csv import load_csv_dataset

        ds = load_csv_dataset(csv)
        return ds, {"source": f"csv:{csv.name}", "rows": len(ds.y), **ds.notes}
    from magic8_dev.ml import data as D

    rng = np.random.default_rng(cfg.seed)
    daily = D.load_daily()
    if cfg.last_days:
        daily = daily.tail(cfg.last_days)
    market = D.build_market(daily, rng)
    day_idx = np.arange(1, len(daily.dates), cfg.day_stride)  # day 0: no previous session
    ds = D.generate_trades(market, day_idx, cfg.slots_per_day, rng)
    if bar is not None:
        bar.update(1)
    info = {
        "source": "generated on real arch daily data (see datacard.md)",
        "days": len(day_idx),
        "slots_per_day": cfg.slots_per_day,
        "rows": len(ds.y),
        "vix_proxy": {"a": daily.proxy_coef[0], "b": daily.proxy_coef[1]},
        "vix_real_from": str(daily.dates[np.argmax(daily.vix_real)]),
    }
    return ds, info


def split_days(day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (train, valid, test) over rows, by whole days in time order."""
    days = np.unique(day)
    if len(days) < 3:
        raise ValueError(f"need at least 3 distinct days to split, got {len(days)}")
    a = round(len(days) * SPLIT[0])
    b = round(len(days) * (SPLIT[0] + SPLIT[1]))
    a = max(1, min(a, len(days) - 2))
    b = max(a + 1, min(b, len(days) - 1))
    return day < days[a], (day >= days[a]) & (day < days[b]), day >= days[b]


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


def train(
    out_dir: Path,
    csv: Path | None = None,
    cfg: Config | None = None,
    report: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    cfg = cfg or Config()
    t0 = time.perf_counter()
    c0 = time.process_time()
    strategies = [s.value for s in STRATEGY_ORDER]
    bar = tqdm(total=3, desc="magic8 train", unit="step", disable=not progress)
    bar.set_postfix_str("data")
    ds, data_info = build_dataset(cfg, csv)
    bar.update(1)
    t_data = time.perf_counter() - t0
    tr, va, te = split_days(ds.day)
    strat_names = np.array([strategies[int(c)] for c in ds.strategy])
    symbols = sorted(set(ds.symbol.tolist()))

    # candidate models in priority order (least specific first)
    candidates: list[tuple[str, np.ndarray]] = [("default", np.ones(len(ds.y), dtype=bool))]
    candidates += [(f"strategy:{s}", strat_names == s) for s in strategies]
    candidates += [(f"symbol:{s}", ds.symbol == s) for s in symbols]
    candidates += [
        (f"symbol_strategy:{sy}:{st}", (ds.symbol == sy) & (strat_names == st))
        for sy in symbols
        for st in strategies
    ]
    bar.total = 2 + len(candidates) + (1 if report else 0)
    bar.refresh()

    t1 = time.perf_counter()
    served_valid = np.full(len(ds.y), np.nan)  # current best prediction on valid rows
    kept: dict[str, xgb.Booster] = {}
    log: dict[str, dict[str, Any]] = {}
    for key, mask in candidates:
        bar.set_postfix_str(key)
        mtr, mva = mask & tr, mask & va
        ytr, yva = ds.y[mtr], ds.y[mva]
        info: dict[str, Any] = {"n_train": int(mtr.sum()), "n_valid": int(mva.sum())}
        enough = key == "default" or (
            mtr.sum() >= cfg.min_train
            and mva.sum() >= cfg.min_valid
            and min(ytr.sum(), len(ytr) - ytr.sum()) >= cfg.min_class
            and min(yva.sum(), len(yva) - yva.sum()) >= cfg.min_class // 4
        )
        if not enough:
            info["kept"] = False
            info["reason"] = "too few samples"
            log[key] = info
            bar.update(1)
            continue
        tf = time.perf_counter()
        booster = _fit(ds.X[mtr], ytr, ds.X[mva], yva, cfg)
        info["fit_s"] = round(time.perf_counter() - tf, 2)
        pv = _predict(booster, ds.X[mva])
        info["valid_logloss"] = logloss(yva, pv)
        info["best_iteration"] = int(booster.best_iteration)
        if key == "default":
            keep = True
        else:
            fallback = logloss(yva, served_valid[mva])
            info["fallback_valid_logloss"] = fallback
            keep = info["valid_logloss"] < fallback
            if not keep:
                info["reason"] = "not better than its fallback on validation"
        info["kept"] = bool(keep)
        if keep:
            # trim to the best iteration so the artifact holds only the trees used
            booster = booster[: booster.best_iteration + 1]
            kept[key] = booster
            served_valid[mva] = pv
        log[key] = info
        bar.update(1)
    t_fit = time.perf_counter() - t1

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
        models[key] = {"file": fname, "threshold": 0.5, "thresholds_by_strategy": {}, **log[key]}
    version = datetime.now(UTC).strftime("%Y%m%d.%H%M") + "-" + digest.hexdigest()[:8]
    manifest: dict[str, Any] = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
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
        "data": data_info,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))

    # thresholds: F1-optimal on validation rows each model serves, overall and per strategy
    hier = load_hierarchy(out_dir)
    xv, yv = ds.X[va], ds.y[va]
    ans_v = hier.predict(xv, ds.symbol[va].tolist(), strat_names[va].tolist())
    pv_all = np.array([a.win_probability for a in ans_v])
    route_v = np.array([a.model_type for a in ans_v])
    sv = strat_names[va]
    for key in models:
        m = route_v == key
        if m.sum() == 0:
            continue
        models[key]["threshold"], models[key]["valid_f1"] = f1_threshold(yv[m], pv_all[m])
        for s in strategies:
            ms = m & (sv == s)
            if ms.sum() >= max(cfg.min_valid // 4, 20) and 0 < yv[ms].sum() < ms.sum():
                models[key]["thresholds_by_strategy"][s] = f1_threshold(yv[ms], pv_all[ms])[0]
    manifest["thresholds"] = {
        key: {"overall": spec["threshold"], "by_strategy": spec["thresholds_by_strategy"]}
        for key, spec in models.items()
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))  # evaluation loads these
    bar.update(1)
    t_thr = time.perf_counter()

    # test: the hierarchy as served vs baselines on the same features and period
    bar.set_postfix_str("evaluate")
    evaluation = evaluate(ds, tr, te, strat_names, out_dir, manifest)
    manifest["metrics"] = evaluation["metrics"]
    t_eval = time.perf_counter() - t_thr
    manifest["drift"] = drift_summary(ds.X[tr], FEATURE_NAMES)
    days = ds.dates if len(ds.dates) else None

    def day_str(i: int) -> str:
        return str(days[i]) if days is not None else str(i)

    manifest["training_window"] = {
        "train": [day_str(int(ds.day[tr].min())), day_str(int(ds.day[tr].max()))],
        "valid": [day_str(int(ds.day[va].min())), day_str(int(ds.day[va].max()))],
        "test": [day_str(int(ds.day[te].min())), day_str(int(ds.day[te].max()))],
        "rows": {"train": int(tr.sum()), "valid": int(va.sum()), "test": int(te.sum())},
    }
    elapsed = time.perf_counter() - t0
    manifest["elapsed_s"] = {
        "data": t_data,
        "fit": t_fit,
        "evaluate": t_eval,
        "total": elapsed,
        "cpu": time.process_time() - c0,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    if report:
        bar.set_postfix_str("report")
        from magic8_dev.ml.report import write_report

        write_report(out_dir, manifest, evaluation, kept)
        datacard = Path(__file__).with_name("datacard.md")
        if datacard.exists():
            shutil.copyfile(datacard, out_dir / "datacard.md")
        bar.update(1)
    bar.close()
    manifest["elapsed_s"]["total"] = time.perf_counter() - t0
    manifest["elapsed_s"]["cpu"] = time.process_time() - c0
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    print(
        f"training: data {t_data:.1f} s, fit {t_fit:.1f} s,"
        f" total {manifest['elapsed_s']['total']:.1f} s wall"
        f" ({manifest['elapsed_s']['cpu']:.1f} s CPU);"
        f" {len(kept)} models kept of {len(candidates)}"
    )
    return manifest


def evaluate(
    ds: Dataset,
    tr: np.ndarray,
    te: np.ndarray,
    strat_names: np.ndarray,
    out_dir: Path,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    hier = load_hierarchy(out_dir)
    xt, yt = ds.X[te], ds.y[te]
    st = strat_names[te]
    answers = hier.predict(xt, ds.symbol[te].tolist(), st.tolist())
    p_model = np.array([a.win_probability for a in answers])
    thr = np.array([a.threshold for a in answers])
    routes = np.array([a.model_type for a in answers])

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

    def block(mask: np.ndarray) -> dict[str, Any]:
        y = yt[mask]
        pred = (p_model[mask] >= thr[mask]).astype(float)
        tp = float((pred * y).sum())
        f1 = 2 * tp / max(pred.sum() + y.sum(), 1e-12)
        return {
            "n": int(mask.sum()),
            "win_rate": float(y.mean()) if mask.any() else float("nan"),
            "model": {
                "auc": auc(y, p_model[mask]),
                "brier": brier(y, p_model[mask]),
                "logloss": logloss(y, p_model[mask]),
                "accuracy_at_threshold": float((pred == y).mean()),
                "f1_at_threshold": f1,
            },
            "logistic_regression": {
                "auc": auc(y, p_lr[mask]),
                "brier": brier(y, p_lr[mask]),
                "logloss": logloss(y, p_lr[mask]),
            },
            "majority": {
                "auc": 0.5,
                "brier": brier(y, p_maj[mask]),
                "logloss": logloss(y, p_maj[mask]),
                "accuracy": float((y == majority_label).mean()),
            },
        }

    per_strategy = {s: block(st == s) for s in sorted(set(st.tolist()))}
    per_level: dict[str, int] = {}
    for r in routes:
        level = r.split(":")[0]
        per_level[level] = per_level.get(level, 0) + 1
    metrics = {
        "test": block(np.ones(len(yt), dtype=bool)),
        "test_per_strategy": per_strategy,
        "test_rows_by_level": per_level,
        "reliability_test": reliability(yt, p_model),
        "reliability_test_logreg": reliability(yt, p_lr),
    }
    return {
        "metrics": metrics,
        "y": yt,
        "p_model": p_model,
        "p_lr": p_lr,
        "strategy": st,
        "routes": routes,
    }
