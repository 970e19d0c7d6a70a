"""Training report: report.md + PNG plots (ROC, reliability per strategy, importance).

One table per forecast information level: the model (the hierarchy as served) against
the majority class, logistic regression and the calibrated option-math baseline, per
strategy and overall, on the held-out test days; reliability curves per strategy; and the
P&L per trade on the test days of three decision rules (take every trade, the F1 rule,
the expected-value rule the service answers with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

BASELINES = (
    ("model", "model"),
    ("option_math", "option math"),
    ("option_math_recalibrated", "option math recal."),
    ("logistic_regression", "logreg"),
    ("majority", "majority"),
)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _plots(
    out_dir: Path,
    evaluation: dict[str, Any],
    kept: dict[str, xgb.Booster],
    by_level: dict[str, dict[str, Any]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    y, pm, pl, po, st = (
        evaluation["y"],
        evaluation["p_model"],
        evaluation["p_lr"],
        evaluation["p_option_math"],
        evaluation["strategy"],
    )
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p, style in (
        ("XGBoost hierarchy", pm, "-"),
        ("option math (calibrated pop_spot)", po, "-."),
        ("logistic regression", pl, "--"),
    ):
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, style, label=f"{name} (all)")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="majority class")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, held-out test days (level {evaluation.get('level', '?')})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=80)
    plt.close(fig)

    strategies = sorted(set(st.tolist()))
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    for ax, s in zip(axes.ravel(), strategies, strict=False):
        for level, ev in by_level.items():
            r = ev["metrics"]["reliability_test_by_strategy"].get(s)
            if r is None:
                continue
            mp = np.array(r["mean_predicted"], dtype=float)
            fp = np.array(r["fraction_positive"], dtype=float)
            ok = np.isfinite(mp) & (np.array(r["count"]) >= 10)
            ax.plot(mp[ok], fp[ok], "o-", ms=3, label=f"model, level {level} (ECE {r['ece']:.3f})")
        m = st == s
        if m.any():
            from magic8_dev.ml.train import reliability

            r = reliability(y[m], po[m])
            mp = np.array(r["mean_predicted"], dtype=float)
            fp = np.array(r["fraction_positive"], dtype=float)
            ok = np.isfinite(mp) & (np.array(r["count"]) >= 10)
            ax.plot(mp[ok], fp[ok], "x--", ms=3, label=f"option math (ECE {r['ece']:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set_title(s)
        ax.set_xlabel("mean predicted win probability")
        ax.set_ylabel("observed win rate")
        ax.legend(fontsize=6)
    fig.suptitle("Reliability per strategy, held-out test days")
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


def _baseline_table(metrics: dict[str, Any]) -> list[str]:
    head = "| slice | n | win rate |"
    sep = "|---|---|---|"
    for _, label in BASELINES:
        head += f" AUC {label} | Brier {label} | log loss {label} |"
        sep += "---|---|---|"
    lines = [head + " model beats option math (Brier and log loss) |", sep + "---|"]
    rows = [("all", metrics["test"]), *metrics["test_per_strategy"].items()]
    for name, b in rows:
        line = f"| {name} | {b['n']} | {_fmt(b['win_rate'], 3)} |"
        for key, _ in BASELINES:
            r = b.get(key, {"auc": None, "brier": None, "logloss": None})
            bold = "**" if key == "model" else ""
            line += (
                f" {bold}{_fmt(r['auc'])}{bold} | {bold}{_fmt(r['brier'])}{bold} |"
                f" {bold}{_fmt(r['logloss'])}{bold} |"
            )
        wins = (
            b["model"]["brier"] < b["option_math"]["brier"]
            and b["model"]["logloss"] < b["option_math"]["logloss"]
        )
        line += f" {'yes' if wins else '**no**'} |"
        lines.append(line)
    return lines


def _pnl_table(pnl: dict[str, Any], slices: list[str]) -> list[str]:
    lines = [
        "| rule | slice | trades taken | share taken | win rate | P&L per trade |"
        " P&L per trade / max loss |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"take_all": "take all", "f1_rule": "F1 rule", "ev_rule": "EV rule"}
    for rule, label in names.items():
        for s in slices:
            r = pnl["rules"][rule].get(s)
            if r is None:
                continue
            lines.append(
                f"| {label} | {s} | {r['taken']} | {_fmt(r['share_taken'], 3)} |"
                f" {_fmt(r['win_rate'], 3)} | {_fmt(r['pnl_per_trade'], 2)} |"
                f" {_fmt(r.get('pnl_per_max_loss'), 4)} |"
            )
    return lines


def write_report(
    out_dir: Path,
    manifest: dict[str, Any],
    evaluation: dict[str, Any],
    kept: dict[str, xgb.Booster],
    by_level: dict[str, dict[str, Any]] | None = None,
) -> None:
    by_level = by_level or {evaluation.get("level", "shipped"): evaluation}
    _plots(out_dir, evaluation, kept, by_level)
    sp = manifest["split"]
    el = manifest["elapsed_s"]
    lvl = manifest["information_level"]
    lines = [
        "# magic8 win-probability model: training report",
        "",
        f"Version `{manifest['version']}`; data: {manifest['data']['source']}"
        f" ({manifest['data']['rows']} trades per level). See datacard.md for what is real and"
        " what is generated.",
        "",
        f"Shipped information level: **{lvl['name']}** (forecast direction agreement with"
        f" the rest of the day: {_fmt(lvl.get('forecast_direction_agreement'), 3)}).",
        "",
        "Whole days in time order, one job per part: "
        + "; ".join(
            f"{name} {v['days'][0]}..{v['days'][1]} ({v['rows']} rows)" for name, v in sp.items()
        )
        + ". Boosters fit on train and stop early on early_stop; a level of the hierarchy is"
        " kept only if it beats its fallback and the option-math baseline on the select days"
        " (Brier and log loss); calibration maps are fitted on the calibrate days; the test"
        " days are scored once, through ModelHierarchy as the service serves.",
        "",
        f"Time for the shipped level: {el['total']:.1f} s wall, {el['cpu']:.1f} s CPU (data"
        f" {el['data']:.1f} s, fit {el['fit']:.1f} s, evaluation {el['evaluate']:.1f} s).",
        "",
        "Baselines: **option math** = the trade's Black-Scholes probability of profit"
        " (feature `pop_spot`: a Normal close around spot with the VIX-implied expected"
        " move), mapped to a win rate per strategy by isotonic regression fitted on the"
        " training days (as the issue defines it); **option math recal.** = the same map"
        " fitted on the calibration days instead, i.e. as close to the test days as the"
        " model's own calibration (the stronger comparator: what the model adds over option"
        " math is best read against it); **logreg** = logistic regression on the same"
        " features; **majority** = the training win rate for every trade.",
        "",
    ]
    for level, ev in by_level.items():
        m = ev["metrics"]
        man = ev.get("manifest", {})
        info = man.get("information_level", {})
        lines += [
            f"## Information level `{level}`",
            "",
            f"Forecast direction agreement {_fmt(info.get('forecast_direction_agreement'), 3)},"
            f" correlation of predicted - spot with close - spot"
            f" {_fmt(info.get('forecast_corr'), 3)}. Models kept:"
            f" {', '.join(sorted(man.get('models', {})))}.",
            "",
            "### Held-out test days: model vs baselines",
            "",
            *_baseline_table(m),
            "",
            f"Expected calibration error (10 bins) on test: {m['ece_test']:.4f} overall; "
            + ", ".join(f"{s} {v:.4f}" for s, v in m["ece_test_by_strategy"].items())
            + ".",
            "",
            f"### P&L per trade on the test days ({m['pnl_test']['unit']})",
            "",
            *_pnl_table(m["pnl_test"], ["all", *m["test_per_strategy"]]),
            "",
        ]
    lines += [
        "The **EV rule** takes a trade when its calibrated win probability is at least its"
        " expected-value breakeven (the `threshold` the API returns): p* = lf * max_loss /"
        " (wf * max_profit + lf * max_loss), where wf and lf are the mean shares of max profit"
        " a win makes and of max loss a loss loses, per strategy, measured on the training"
        f" days (manifest `payoff`), plus a margin of {manifest.get('ev_margin', 0.0)}. The"
        " **F1 rule** is the old per-model F1-optimal threshold (now fitted on the selection"
        " days). P&L per trade / max loss is scale-free (SPX and SPY trades weigh the same);"
        " P&L per trade in dollars is dominated by the large-index symbols.",
        "",
        "![ROC](roc.png) ![reliability](reliability.png) ![importance](importance.png)",
        "",
        "## Model",
        "",
        f"{len(manifest['feature_names'])} features (magic8.domain.features.FEATURE_NAMES)."
        " Monotone constraints (the win probability can only rise with them, all else fixed):"
        f" {', '.join(manifest.get('monotone_increasing', []))}. XGBoost parameters: "
        + ", ".join(f"{k}={v}" for k, v in manifest["params"].items())
        + ".",
        "",
        "## Hierarchy (shipped level)",
        "",
        f"Test rows served by level: {manifest['metrics']['test_rows_by_level']}.",
        "",
        "| model | kept | n train | n select | best round / cap | select log loss |"
        " fallback | option math | select Brier | fallback | option math | calibration | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, info in manifest["candidates"].items():
        spec = manifest["models"].get(key, {})
        cal = spec.get("calibration") or {}
        cal_s = spec.get("calibration_by_strategy") or {}
        cal_txt = (f"{cal.get('method', '')} ({cal.get('n', 0)} rows)" if cal else "") + (
            f"; per strategy: {', '.join(cal_s)}" if cal_s else ""
        )
        best = info.get("best_iteration")
        rounds = "" if best is None else f"{best + 1} / {info.get('round_cap')}"
        note = info.get("reason", "")
        lines.append(
            f"| {key} | {'yes' if info.get('kept') else 'no'} | {info['n_train']} |"
            f" {info.get('n_select', '')} |"
            f" {rounds} |"
            f" {_fmt(info.get('select_logloss'))} | {_fmt(info.get('fallback_select_logloss'))} |"
            f" {_fmt(info.get('option_math_select_logloss'))} | {_fmt(info.get('select_brier'))} |"
            f" {_fmt(info.get('fallback_select_brier'))} |"
            f" {_fmt(info.get('option_math_select_brier'))} | {cal_txt} | {note} |"
        )
    lines += [
        "",
        "RUT has no honest data source here, so no RUT model exists: RUT trades are served by"
        " the strategy level (or default).",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))
