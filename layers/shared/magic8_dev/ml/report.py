"""Training report: report.md + PNG plots (ROC, reliability curve, feature importance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4f}"


def _plots(out_dir: Path, evaluation: dict[str, Any], kept: dict[str, xgb.Booster]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    y, pm, pl, st = (
        evaluation["y"],
        evaluation["p_model"],
        evaluation["p_lr"],
        evaluation["strategy"],
    )

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p, style in (("XGBoost hierarchy", pm, "-"), ("logistic regression", pl, "--")):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, style, label=f"{name} (all)")
    for s in sorted(set(st.tolist())):
        m = st == s
        if len(np.unique(y[m])) == 2:
            fpr, tpr, _ = roc_curve(y[m], pm[m])
            ax.plot(fpr, tpr, ":", label=f"hierarchy: {s}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="majority class")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, held-out test days")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, key in (
        ("XGBoost hierarchy", "reliability_test"),
        ("logistic regression", "reliability_test_logreg"),
    ):
        r = evaluation["metrics"][key]
        mp = np.array(r["mean_predicted"], dtype=float)
        fp = np.array(r["fraction_positive"], dtype=float)
        ok = np.isfinite(mp)
        ax.plot(mp[ok], fp[ok], "o-", label=f"{name} (ECE {r['ece']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel("mean predicted win probability")
    ax.set_ylabel("observed win rate")
    ax.set_title("Reliability, held-out test days")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=80)
    plt.close(fig)

    gain = kept["default"].get_score(importance_type="gain")
    top = sorted(gain.items(), key=lambda kv: kv[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([k for k, _ in top][::-1], [v for _, v in top][::-1])
    ax.set_xlabel("gain")
    ax.set_title("Feature importance (default model)")
    fig.tight_layout()
    fig.savefig(out_dir / "importance.png", dpi=80)
    plt.close(fig)


def write_report(
    out_dir: Path,
    manifest: dict[str, Any],
    evaluation: dict[str, Any],
    kept: dict[str, xgb.Booster],
) -> None:
    _plots(out_dir, evaluation, kept)
    m = manifest["metrics"]
    tw = manifest["training_window"]
    lines = [
        "# magic8 win-probability model: training report",
        "",
        f"Version `{manifest['version']}`; data: {manifest['data']['source']}"
        f" ({manifest['data']['rows']} trades). See datacard.md for what is real and derived.",
        "",
        f"Split by whole days in time order: train {tw['train'][0]}..{tw['train'][1]}"
        f" ({tw['rows']['train']} rows), validation {tw['valid'][0]}..{tw['valid'][1]}"
        f" ({tw['rows']['valid']}), test {tw['test'][0]}..{tw['test'][1]} ({tw['rows']['test']}).",
        f"Training time before this report: {manifest['elapsed_s']['total']:.1f} s wall,"
        f" {manifest['elapsed_s']['cpu']:.1f} s CPU (data {manifest['elapsed_s']['data']:.1f} s,"
        f" fit {manifest['elapsed_s']['fit']:.1f} s, evaluation"
        f" {manifest['elapsed_s']['evaluate']:.1f} s; wall time depends on the shared"
        " machine's load, CPU time does not).",
        "",
        "## Held-out test: hierarchy vs baselines (same features, same days)",
        "",
        "| slice | n | win rate | AUC model | AUC logreg | AUC majority | Brier model"
        " | Brier logreg | Brier majority |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("all", m["test"]), *m["test_per_strategy"].items()]
    for name, b in rows:
        lines.append(
            f"| {name} | {b['n']} | {b['win_rate']:.3f} | **{_fmt(b['model']['auc'])}**"
            f" | {_fmt(b['logistic_regression']['auc'])} | 0.5000"
            f" | **{_fmt(b['model']['brier'])}** | {_fmt(b['logistic_regression']['brier'])}"
            f" | {_fmt(b['majority']['brier'])} |"
        )
    t = m["test"]
    beats = (
        t["model"]["auc"] > t["logistic_regression"]["auc"]
        and t["model"]["brier"] < t["logistic_regression"]["brier"]
        and t["model"]["brier"] < t["majority"]["brier"]
    )
    lines += [
        "",
        f"The hierarchy {'beats' if beats else 'does NOT beat'} both baselines overall"
        " (higher AUC, lower Brier).",
        f"At the F1 thresholds: accuracy {t['model']['accuracy_at_threshold']:.3f},"
        f" F1 {t['model']['f1_at_threshold']:.3f}; majority-class accuracy"
        f" {t['majority']['accuracy']:.3f}.",
        "",
        "## Calibration",
        "",
        f"Expected calibration error on test: hierarchy {m['reliability_test']['ece']:.4f},"
        f" logistic regression {m['reliability_test_logreg']['ece']:.4f}. "
        "No post-hoc calibration map is applied (the raw XGBoost log-loss output is already"
        " close to the diagonal; see reliability.png).",
        "",
        "![ROC](roc.png) ![reliability](reliability.png) ![importance](importance.png)",
        "",
        "## Model",
        "",
        f"{len(manifest['feature_names'])} features (magic8.domain.features.FEATURE_NAMES)."
        " Monotone constraints (the win probability can only rise with them, all else fixed):"
        f" {', '.join(manifest.get('monotone_increasing', []))} - so a better price never"
        " lowers the probability. XGBoost parameters: "
        + ", ".join(f"{k}={v}" for k, v in manifest["params"].items())
        + ".",
        "",
        "## Hierarchy",
        "",
        f"Test rows served by level: {m['test_rows_by_level']}.",
        "",
        "| model | kept | n train | n valid | valid logloss | fallback logloss | threshold |"
        " per-strategy thresholds | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, info in manifest["candidates"].items():
        spec = manifest["models"].get(key, {})
        thr = spec.get("threshold")
        per = spec.get("thresholds_by_strategy", {})
        lines.append(
            f"| {key} | {'yes' if info.get('kept') else 'no'} | {info['n_train']} |"
            f" {info['n_valid']} | {_fmt(info.get('valid_logloss', float('nan')))} |"
            f" {_fmt(info.get('fallback_valid_logloss', float('nan')))} |"
            f" {_fmt(thr) if thr is not None else ''} |"
            f" {', '.join(f'{k}: {v:.3f}' for k, v in per.items())}"
            f" | {info.get('reason', '')} |"
        )
    lines += [
        "",
        "RUT has no honest data source here, so no RUT model exists: RUT trades are served by"
        " the strategy level (or default).",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))
