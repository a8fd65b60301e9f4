"""Figures and Markdown tables of a sweep's results, regenerated into docs/results.md.

The Markdown is written between `<!-- BEGIN GENERATED sweep:<grid> -->` and
`<!-- END GENERATED sweep:<grid> -->` markers, so the hand-written discussion around
them survives a regeneration and each grid (full, quick) keeps its own section.
"""
import os
import re
from pathlib import Path

import numpy as np

from altmarl_ros.experiments.fits import fit_inverse_sqrt, fit_power_law
from altmarl_ros.core.atomic import atomic_writer, write_atomic
from altmarl_ros.core.baselines import BASELINES
from altmarl_ros.core.observers import PAPER_OBSERVER
from altmarl_ros.core.safe_files import read_text
from altmarl_ros.experiments.sweep import observer_method

# The authors' public code (github.com/emiletimothy/alternating-marl) on their warehouse model.
AUTHORS_WELFARE = {1: 83.4, 5: 85.9, 10: 87.8, 20: 90.0}
AUTHORS_GLEARN_SECONDS = {10: 0.1, 20: 1.0, 30: 4.0, 40: 11.0}  # 100 unconverged sweeps
AUTHORS_GLEARN_MB = {40: 460.0}  # dense (k+1)^|S_l| tables
AUTHORS_MODEL = "warehouse"

METHOD_LABELS = {
    "alternating": "ALTERNATING-MARL",
    "alternating_uniform_start": "ALTERNATING-MARL, uniform start",
    "subsample_mfq": "SUBSAMPLE-MFQ (uniform locals)",
    "full_observation": "full-observation stand-in",
}
FRESH = observer_method(PAPER_OBSERVER)  # the plain points; each other observer's are observer_method(name)
OBSERVER_STYLES = (("^", "C1"), ("v", "C2"), ("P", "C6"), ("X", "C8"))  # cycled over the grid's other observers
BASELINE_COLORS = ("C3", "C2", "C6", "C7", "C8", "C9")  # in registration order; C0, C1, C4, C5 are taken
AUTHORS_SUFFIX = "@authors"  # rows evaluated with the authors' protocol (sweep.py)


def _rows(results, model, method):
    rows = [row for row in results["rows"] if row["model"] == model and row["method"] == method]
    return sorted(rows, key=lambda row: row["k"] or 0)


def _models(results):
    return [spec["name"] for spec in results["grid"]["models"]
            if any(row["model"] == spec["name"] for row in results["rows"])]


def _observers(results):
    """The grid's observers other than the paper's fresh that have rows (the sweep's observer axis)."""
    names = [name for name in results["grid"].get("observers", ()) if name != PAPER_OBSERVER]
    return [name for name in names if any(row["method"] == observer_method(name) for row in results["rows"])]


def _informed_rows(results, model):
    return [row for row in _rows(results, model, "alternating") if row.get("informed_gain") is not None]


def gap_fits(results, model):
    """(c/sqrt(k) fit, free power-law fit or None) of the informed-deviation gains.

    These gains are measured against a k_ref-informed global agent, so the curves are
    c (k^-alpha - k_ref^-alpha) (fits.py). None, None with fewer than two points.
    """
    rows = _informed_rows(results, model)
    if len(rows) < 2:
        return None, None
    k = [row["k"] for row in rows]
    gain = [row["informed_gain"] for row in rows]
    k_ref = rows[0]["reference_k"]
    return fit_inverse_sqrt(k, gain, k_ref), fit_power_law(k, gain, k_ref)


# ---------------------------------------------------------------- figures

def _panels(n_panels, height=3.6):
    """A figure with n panels side by side; a bare Figure needs no display and no close()."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * n_panels, height))
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _errorbar(ax, rows, label, **style):
    if rows:
        ax.errorbar([r["k"] for r in rows], [r["welfare"] for r in rows],
                    yerr=[r["welfare_ci95"] for r in rows], capsize=3, label=label, **style)


def _k_axis(ax, results, label="k (locals observed per step)"):
    """Log k axis ticked at the grid's k values (matplotlib would write 2x10^0)."""
    ax.set_xscale("log")
    ticks = sorted(set(results["grid"]["k"]) | {row["k"] for row in results["rows"] if row["k"]})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel(label)


def _label(method):
    """How figures and tables name a method: the baseline registry's label, else METHOD_LABELS."""
    return BASELINES[method].label if method in BASELINES else METHOD_LABELS[method]


def _baseline_bands(ax, results, model, suffix="", only=None):
    """A dotted line and CI band per registered baseline (or only the one named `only`)."""
    for method, color in zip(BASELINES, BASELINE_COLORS):
        if only is not None and method != only:
            continue
        for row in _rows(results, model, method + suffix):
            ax.axhline(row["welfare"], color=color, linestyle=":", label=_label(method))
            ax.axhspan(row["welfare"] - row["welfare_ci95"], row["welfare"] + row["welfare_ci95"],
                       color=color, alpha=0.12)


def _welfare_figure(results):
    models = _models(results)
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        _errorbar(ax, _rows(results, model, "alternating"), _label("alternating"),
                  marker="o", color="C0")
        _errorbar(ax, _rows(results, model, "alternating_uniform_start"),
                  _label("alternating_uniform_start"), marker="d", color="C5", linestyle="-.")
        _errorbar(ax, _rows(results, model, "subsample_mfq"), _label("subsample_mfq"),
                  marker="s", color="C1", linestyle="--")
        _baseline_bands(ax, results, model)
        _errorbar(ax, _rows(results, model, "full_observation"), _label("full_observation"),
                  marker="*", markersize=11, color="C4", linestyle="none")
        _k_axis(ax, results)
        ax.set_title(model)
        ax.set_ylabel("welfare (discounted return), 95% CI")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


def _observers_figure(results):
    """Welfare against k under each observer, with the best constant dispatcher's band."""
    models = _models(results)
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        _errorbar(ax, _rows(results, model, FRESH), f"{PAPER_OBSERVER} sample (the paper)", marker="o", color="C0")
        for i, name in enumerate(_observers(results)):
            marker, color = OBSERVER_STYLES[i % len(OBSERVER_STYLES)]
            _errorbar(ax, _rows(results, model, observer_method(name)), f"{name} observer", marker=marker,
                      color=color, linestyle="--")
        _baseline_bands(ax, results, model, only="best_constant_global")
        _k_axis(ax, results)
        ax.set_title(model)
        ax.set_ylabel("welfare (discounted return), 95% CI")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _authors_figure(results):
    """Our warehouse policies scored the authors' way, next to their published points."""
    fig, (ax,) = _panels(1, height=4.0)
    _errorbar(ax, _rows(results, AUTHORS_MODEL, "alternating" + AUTHORS_SUFFIX),
              "ALTERNATING-MARL (ours, authors' evaluation)", marker="o", color="C0")
    _errorbar(ax, _rows(results, AUTHORS_MODEL, "alternating_uniform_start" + AUTHORS_SUFFIX),
              "ours, uniform start as theirs", marker="d", color="C5", linestyle="-.")
    _baseline_bands(ax, results, AUTHORS_MODEL, AUTHORS_SUFFIX)
    ax.plot(list(AUTHORS_WELFARE), list(AUTHORS_WELFARE.values()), "kx", markersize=9,
            label="authors' code (published)")
    _k_axis(ax, results)
    ax.set_title(f"{AUTHORS_MODEL}: authors' evaluation protocol")
    ax.set_ylabel("welfare (discounted return), 95% CI")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _gap_figure(results):
    models = _models(results)
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        rows = _rows(results, model, "alternating")
        k = [r["k"] for r in rows]
        ax.plot(k, [r["global_gain"] for r in rows], "^", color="C1", alpha=0.8,
                label="surrogate global BR gain")
        ax.plot(k, [r["local_gain"] for r in rows], "v", color="C2", alpha=0.8,
                label="local BR gain (induced MDP)")
        informed = _informed_rows(results, model)
        if informed:
            k_ref = informed[0]["reference_k"]
            ax.errorbar([r["k"] for r in informed], [r["informed_gain"] for r in informed],
                        yerr=[r["informed_gain_ci95"] for r in informed], fmt="o", color="C0",
                        capsize=3, label=f"informed global gain (vs k_ref = {k_ref})")
        sqrt_fit, free_fit = gap_fits(results, model)
        if sqrt_fit is not None:
            grid = np.geomspace(min(k), sqrt_fit.k_ref, 200)
            ax.plot(grid, sqrt_fit.predict(grid), "-", color="C0",
                    label=f"{sqrt_fit.c:.3g}(1/sqrt(k) - 1/sqrt(k_ref)), R2={sqrt_fit.r2:.2f}")
            if free_fit is not None:
                ax.plot(grid, free_fit.predict(grid), "--", color="C4",
                        label=f"free exponent {free_fit.alpha:.2f}, R2={free_fit.r2:.2f}")
        ax.axhline(0.0, color="k", linewidth=0.6)
        _k_axis(ax, results)
        ax.set_title(model)
        ax.set_ylabel("best-response gain (welfare units)")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def _cost_figure(results):
    fig, (time_ax, memory_ax) = _panels(2)
    for index, model in enumerate(_models(results)):
        rows = _rows(results, model, "glearn_cost")
        k = [r["k"] for r in rows]
        time_ax.plot(k, [r["glearn_seconds"] for r in rows], "o-", color=f"C{index}", label=model)
        memory_ax.plot(k, [max(r["glearn_peak_mb"], 0.1) for r in rows], "o-", color=f"C{index}",
                       label=model)
    time_ax.plot(list(AUTHORS_GLEARN_SECONDS), list(AUTHORS_GLEARN_SECONDS.values()), "kx",
                 label="authors' code, 100 sweeps")
    memory_ax.plot(list(AUTHORS_GLEARN_MB), list(AUTHORS_GLEARN_MB.values()), "kx",
                   label="authors' code, dense tables")
    time_ax.set_ylabel("G-LEARN seconds to tolerance")
    memory_ax.set_ylabel("G-LEARN peak RSS growth (MB, floor 0.1)")
    for ax in (time_ax, memory_ax):
        _k_axis(ax, results)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def _rounds_figure(results):
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = _panels(1)
    for index, model in enumerate(_models(results)):
        rows = _rows(results, model, "alternating")
        # Rounds are small integers and models often coincide: shrinking open markers keep each visible.
        ax.plot([r["k"] for r in rows], [r["rounds"] for r in rows], "o", linestyle=("-", "--", ":")[index % 3],
                color=f"C{index}", markersize=11 - 3 * (index % 3), markerfacecolor="none", label=model)
        stopped = [r for r in rows if not r["converged"]]
        if stopped:
            ax.plot([r["k"] for r in stopped], [r["rounds"] for r in stopped], "x", color="k",
                    markersize=9)
    ax.plot([], [], "x", color="k", label="hit the round cap")
    _k_axis(ax, results)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("ALTERNATING-MARL rounds (G-LEARN calls)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig


FIGURE_NAMES = ("welfare_vs_k", "nash_gap_vs_k", "glearn_cost_vs_k", "rounds_vs_k", "authors_protocol",
                "observers_vs_k")


def figure_path(figure_dir, grid_name: str, name: str) -> Path:
    """Where figure `name` (one of FIGURE_NAMES) of grid `grid_name` is written."""
    return Path(figure_dir) / f"{grid_name}_{name}.png"


def write_figures(results, figure_dir):
    """Write this grid's PNGs (<grid>_<figure>.png, atomically); returns {figure name: path}."""
    figure_dir = Path(figure_dir)
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures = {"welfare_vs_k": _welfare_figure, "nash_gap_vs_k": _gap_figure,
               "glearn_cost_vs_k": _cost_figure, "rounds_vs_k": _rounds_figure}
    if _rows(results, AUTHORS_MODEL, "alternating" + AUTHORS_SUFFIX):
        figures["authors_protocol"] = _authors_figure
    if _observers(results):
        figures["observers_vs_k"] = _observers_figure
    paths = {}
    for name, draw in figures.items():
        paths[name] = figure_path(figure_dir, results["grid"]["name"], name)
        fig = draw(results)
        fig.tight_layout()
        with atomic_writer(paths[name]) as stream:
            fig.savefig(stream, format="png", dpi=110)
    return paths


# ---------------------------------------------------------------- markdown

def _fmt(value, digits=2):
    if value is None:
        return "n/a"
    if isinstance(value, float) and (value != value):
        return "nan"
    return f"{value:.{digits}f}"


def _welfare_cell(row):
    return f"{row['welfare']:.2f} ± {row['welfare_ci95']:.2f}" if row else "n/a"


def _informed_cell(row):
    if row.get("informed_gain") is None:
        return "n/a"
    return f"{row['informed_gain']:.3f} ± {row['informed_gain_ci95']:.3f}"


def _cpu_caveat(results):
    missing = results.get("units_without_cpu_seconds", len(results["units"]))
    return f" for the {len(results['units']) - missing} points that recorded it" if missing else ""


def _duration(seconds):
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _model_table(results, model):
    alternating = _rows(results, model, "alternating")
    mfq = {row["k"]: row for row in _rows(results, model, "subsample_mfq")}
    cost = {row["k"]: row for row in _rows(results, model, "glearn_cost")}
    uniform = {row["k"]: row for row in _rows(results, model, "alternating_uniform_start")}
    lines = [
        "| k | count vectors | ALTERNATING-MARL welfare | uniform start | SUBSAMPLE-MFQ welfare "
        "| Nash gap (global / local) | informed global gain | rounds | train s | G-LEARN s (sweeps) "
        "| G-LEARN MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in alternating:
        other = mfq.get(row["k"])
        rounds = f"{row['rounds']}" + ("" if row["converged"] else " (cap)")
        probe = cost.get(row["k"])
        glearn = f"{_fmt(probe['glearn_seconds'])} ({probe['glearn_sweeps']})" if probe else "n/a"
        lines.append(
            f"| {row['k']} | {row['n_count_vectors']:,} | {_welfare_cell(row)} "
            f"| {_welfare_cell(uniform.get(row['k']))} | {_welfare_cell(other)} "
            f"| {_fmt(row['nash_gap'], 3)} ({_fmt(row['global_gain'], 3)} / {_fmt(row['local_gain'], 3)}) "
            f"| {_informed_cell(row)} | {rounds} | {_fmt(row['train_seconds'], 1)} | {glearn} "
            f"| {_fmt(probe['glearn_peak_mb'], 0) if probe else 'n/a'} |")
    for method in (*BASELINES, "full_observation"):
        for row in _rows(results, model, method):
            at = f" (k = {row['k']})" if row["k"] else ""
            note = f"; {row['note']}" if row.get("note") else ""
            lines.append(f"\n{_label(method)}{at}: **{_welfare_cell(row)}**{note}")
    return "\n".join(lines)


def _claims(results, model):
    """Plain statements checked against the numbers (no adjectives the data do not carry)."""
    alternating = _rows(results, model, "alternating")
    if not alternating:
        return []
    first, last = alternating[0], alternating[-1]
    overlap = abs(last["welfare"] - first["welfare"]) <= last["welfare_ci95"] + first["welfare_ci95"]
    direction = "rises" if last["welfare"] > first["welfare"] else "falls"
    claims = [
        f"welfare {direction} from {_welfare_cell(first)} at k = {first['k']} to "
        f"{_welfare_cell(last)} at k = {last['k']}"
        + (" (the 95% CIs overlap)" if overlap else " (CIs disjoint)")
    ]
    for method in BASELINES:
        baseline = _rows(results, model, method)
        if baseline:
            level = baseline[0]["welfare"] + baseline[0]["welfare_ci95"]
            above = [row["k"] for row in alternating if row["welfare"] - row["welfare_ci95"] > level]
            claims.append(
                f"beats {_label(method)} ({_welfare_cell(baseline[0])}) beyond both CIs at "
                f"{len(above)} of {len(alternating)} k" + (f": k = {above}" if above else ""))
    for method in ("subsample_mfq", "alternating_uniform_start"):
        other = {row["k"]: row for row in _rows(results, model, method)}
        if other:
            wins = [row["k"] for row in alternating if row["k"] in other and row["welfare"] - row["welfare_ci95"]
                    > other[row["k"]]["welfare"] + other[row["k"]]["welfare_ci95"]]
            claims.append(f"beats {_label(method)} at the same k beyond both CIs at {len(wins)} of "
                          f"{len(alternating)} k")
    exact = [row["k"] for row in alternating if row["nash_gap"] <= 1e-6]
    claims.append(f"surrogate Nash gap (max of both best-response gains) ≤ 1e-6 at {len(exact)} of "
                  f"{len(alternating)} k; largest {max(row['nash_gap'] for row in alternating):.3g}")
    sqrt_fit, free_fit = gap_fits(results, model)
    if sqrt_fit is not None:
        text = (f"informed global gain ≈ {sqrt_fit.c:.3g}·(1/√k − 1/√{sqrt_fit.k_ref}) with "
                f"R² = {sqrt_fit.r2:.2f}")
        if free_fit is not None:
            text += (f"; free exponent: {free_fit.c:.3g}·(k^-{free_fit.alpha:.2f} − "
                     f"{sqrt_fit.k_ref}^-{free_fit.alpha:.2f}), R² = {free_fit.r2:.2f}")
        claims.append(text)
    return claims


def _observer_text(meta):
    if meta["name"] == PAPER_OBSERVER:
        return f"{PAPER_OBSERVER} (selected)"
    prior = f", prior {meta['prior']:g}" if meta["prior"] else ", prior 0"
    return f"gain {meta['gain']:g}, K = {meta['resolution']}{prior}"


def _observer_table(results, model, name):
    """Fresh against observer `name` at each k (its paired gain), what the selection chose, its cost."""
    fresh = {row["k"]: row for row in _rows(results, model, FRESH)}
    lines = [f"| k | {PAPER_OBSERVER} (the paper) | {name} | {name} − {PAPER_OBSERVER} (paired) | observer chosen "
             f"| TV error {PAPER_OBSERVER} → {name} | train s (selection s) |",
             "|---:|---:|---:|---:|---|---:|---:|"]
    for row in _rows(results, model, observer_method(name)):
        lines.append(
            f"| {row['k']} | {_welfare_cell(fresh.get(row['k']))} | {_welfare_cell(row)} "
            f"| {row['gain_over_fresh']:+.2f} ± {row['gain_over_fresh_ci95']:.2f} | {_observer_text(row['observer'])} "
            f"| {_fmt(row['fresh_estimation_error'], 3)} → {_fmt(row['estimation_error'], 3)} "
            f"| {_fmt(row['train_seconds'], 0)} ({_fmt(row['selection_seconds'], 0)}) |")
    return "\n".join(lines)


def _observer_claims(results, model, name):
    """Where observer `name` helps and where it does not, stated from the numbers."""
    method, paper = observer_method(name), PAPER_OBSERVER
    rows = _rows(results, model, method)
    fresh = {row["k"]: row for row in _rows(results, model, FRESH)}
    ks = [row["k"] for row in rows]
    above = [row["k"] for row in rows if row["gain_over_fresh"] - row["gain_over_fresh_ci95"] > 0]
    below = [row["k"] for row in rows if row["gain_over_fresh"] + row["gain_over_fresh_ci95"] < 0]
    claims = [f"{name} above {paper} beyond the paired 95% CI at {len(above)} of {len(rows)} k"
              + (f": k = {above}" if above else "")
              + (f"; below it at k = {below}" if below else "; never below it beyond the CI")]
    picked_fresh = [row["k"] for row in rows if row["observer"]["name"] == paper]
    if picked_fresh:
        claims.append(f"the selection chose {paper} itself at k = {picked_fresh}")
    compared = ((name, method), (paper, FRESH))
    for baseline in _rows(results, model, "best_constant_global"):
        low, high = baseline["welfare"] - baseline["welfare_ci95"], baseline["welfare"] + baseline["welfare_ci95"]
        for label, of in compared:
            rows = [r for r in _rows(results, model, of) if r["k"] in ks]
            level = [r["k"] for r in rows if r["welfare"] + r["welfare_ci95"] >= low]
            beyond = [r["k"] for r in rows if r["welfare"] - r["welfare_ci95"] > high]
            claims.append(f"{label} at or above {_label('best_constant_global')} ({_welfare_cell(baseline)}) within "
                          f"the CIs " + (f"at k = {level}" if level else "at no k")
                          + (f", beyond both CIs at k = {beyond}" if beyond else ""))
    top = fresh.get(max(ks))
    if top is not None:
        reach = [min((r["k"] for r in _rows(results, model, of) if r["k"] in ks
                      and r["welfare"] + r["welfare_ci95"] >= top["welfare"] - top["welfare_ci95"]), default="none")
                 for _, of in compared]
        claims.append(f"within both CIs of {paper} at k = {top['k']} ({_welfare_cell(top)}) from k = "
                      f"{reach[0]} with the {name}, k = {reach[1]} {paper}")
    return claims


def _authors_table(results):
    ours = {row["k"]: row for row in _rows(results, AUTHORS_MODEL, "alternating" + AUTHORS_SUFFIX)}
    uniform = {row["k"]: row for row in
               _rows(results, AUTHORS_MODEL, "alternating_uniform_start" + AUTHORS_SUFFIX)}
    if not ours:
        return ""
    lines = ["| k | authors' code (uniform start) | ours, uniform start | ours (best-constant start) |",
             "|---:|---:|---:|---:|"]
    for k, theirs in AUTHORS_WELFARE.items():
        lines.append(f"| {k} | {theirs} | {_welfare_cell(uniform.get(k))} | {_welfare_cell(ours.get(k))} |")
    for method in BASELINES:
        for row in _rows(results, AUTHORS_MODEL, method + AUTHORS_SUFFIX):
            lines.append(f"| {_label(method)} | | | {_welfare_cell(row)} |")
    note = next(iter(ours.values()))["note"]
    return "\n".join(lines) + f"\n\nOur columns: {note}."


def render_markdown(results, figure_paths, doc_path):
    """The generated section for one grid (without markers)."""
    grid = results["grid"]
    doc_dir = Path(doc_path).resolve().parent
    finished = sorted(unit["finished_at"] for unit in results["units"])
    out = [
        f"### Grid `{grid['name']}`",
        "",
        f"Settings: k ∈ {grid['k']}, n = {grid['n']}, m = {grid['m']}, at most {grid['rounds']} rounds, "
        f"horizon {grid['horizon']}, {grid['seeds']} seeds × {grid['rollouts']} rollouts, seed {grid['seed']}. "
        f"Compute time of all points: **{_duration(results['compute_seconds'])} wall**, "
        f"{_duration(results.get('cpu_seconds', 0.0))} CPU{_cpu_caveat(results)} (sums over points; "
        f"2-core machine shared with other jobs, so wall time is inflated; finished {finished[0][:10]}"
        f"{' to ' + finished[-1][:10] if finished[-1][:10] != finished[0][:10] else ''}).",
        "",
    ]
    trained = [(name, grid[name]) for name in grid.get("observers", ()) if name != PAPER_OBSERVER and grid.get(name)]
    if trained:
        out[-1:] = [f"Observers: {', '.join(grid['observers'])}." + "".join(
            f" The {name} is trained as `altmarl train --observer {name}` trains it: gains {block['gains']}, pi_g at "
            f"most {block['max_columns']:,} count vectors, {block['select_rollouts']} selection rollouts per "
            f"candidate with n = {grid['n']}, horizon {grid['horizon']}." for name, block in trained), ""]
    for name, path in figure_paths.items():
        relative = os.path.relpath(Path(path).resolve(), doc_dir)
        out += [f"![{name}]({relative})", ""]
    for model in _models(results):
        out += [f"#### {model} (model hash `{results['model_hashes'].get(model, '?')}`)", ""]
        out += [f"- {claim}" for claim in _claims(results, model)]
        out += ["", _model_table(results, model), ""]
        for name in _observers(results):
            if _rows(results, model, observer_method(name)):
                out += [f"Observers on {model}: {name} against {PAPER_OBSERVER} (the paired difference is per "
                        f"rollout, on the evaluation streams):", ""]
                out += [f"- {claim}" for claim in _observer_claims(results, model, name)]
                out += ["", _observer_table(results, model, name), ""]
    authors = _authors_table(results)
    if authors:
        out += ["#### Against the authors' published numbers (their code, their setup)", "", authors, ""]
    return "\n".join(out).rstrip() + "\n"


def _markers(grid_name):
    return (f"<!-- BEGIN GENERATED sweep:{grid_name} (altmarl sweep --report) -->",
            f"<!-- END GENERATED sweep:{grid_name} -->")


def replace_generated(text, grid_name, body):
    """Put body between this grid's markers in text, appending a new section if absent."""
    begin, end = _markers(grid_name)
    block = f"{begin}\n{body}{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _match: block, text, count=1)
    return text.rstrip() + "\n\n" + block + "\n"


def write_report(results, doc_path, figure_dir):
    """Regenerate this grid's figures and its section of doc_path; returns the figure paths."""
    doc_path = Path(doc_path)
    text = read_text(doc_path, "report document") if doc_path.exists() else "# Results\n"  # before any write
    figure_paths = write_figures(results, figure_dir)
    body = render_markdown(results, figure_paths, doc_path)
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(doc_path, replace_generated(text, results["grid"]["name"], body))
    return figure_paths
