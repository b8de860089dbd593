"""Learning curves: deterministic evaluation return against env steps, from run directories."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from softac.errors import SoftacError
from softac.rundir import read_run_config
from softac.figures import figure_path, save_figure
from softac.logger import read_metrics


def eval_curve(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, eval_return_mean) of the evaluation rows of a run's metrics.csv."""
    try:
        rows = read_metrics(run_dir)
    except FileNotFoundError:
        raise SoftacError(f"{run_dir} has no metrics.csv to plot.") from None
    rows = [r for r in rows if r.get("eval_return_mean") is not None]
    return (np.array([r["env_step"] for r in rows], dtype=np.int64),
            np.array([r["eval_return_mean"] for r in rows], dtype=np.float64))


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None,
              references: Sequence[tuple[int, float, float]] = ()) -> Path:
    """Write a PNG of evaluation return vs env steps: one panel per environment, and for several
    runs of one environment (and algorithm) their mean with a min-max band over the steps all share.
    Returns the path written (`out`, with .png added when it has no suffix; see softac.figures).
    `references`: published (env step, low, high) figures, drawn as black markers with their range."""
    out = figure_path(out)  # a bad output path fails before any work
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run_dir in run_dirs:
        cfg = read_run_config(run_dir)
        steps, returns = eval_curve(run_dir)
        if len(steps) == 0:
            raise SoftacError(f"{run_dir} has no evaluation results yet.")
        groups[cfg.env][cfg.algo].append((steps, returns))

    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, (env_id, by_algo) in zip(axes[0], sorted(groups.items())):
        for algo, curves in sorted(by_algo.items()):
            _plot_mean_and_band(ax, curves, algo)
        if references:
            steps, lows, highs = (np.array(v, dtype=np.float64) for v in zip(*references))
            ax.errorbar(steps, (lows + highs) / 2, yerr=(highs - lows) / 2, fmt="kD", markersize=5, capsize=4,
                        label="published reference")
        ax.set_title(title or env_id)
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return (deterministic)")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out)


def _plot_mean_and_band(ax, curves: list[tuple[np.ndarray, np.ndarray]], label: str) -> None:
    """One run: its curve. Several: their mean with a min-max band over the evaluation steps they all share."""
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
    if len(curves) == 1 or not common:
        for steps, returns in curves:
            ax.plot(steps, returns, label=label)
        return
    common = np.array(common)
    stacked = np.stack([r[np.searchsorted(s, common)] for s, r in curves])
    line, = ax.plot(common, stacked.mean(0), label=f"{label} (mean of {len(curves)} seeds)")
    ax.fill_between(common, stacked.min(0), stacked.max(0), color=line.get_color(), alpha=0.25)


def plot_groups(groups: dict[str, Sequence[str | Path]], out: str | Path, title: str) -> Path:
    """Write a PNG with one curve per named group of runs (a sweep's grid points): mean and min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, run_dirs in groups.items():
        curves = [c for c in (eval_curve(d) for d in run_dirs) if len(c[0])]
        if curves:
            _plot_mean_and_band(ax, curves, label)
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (deterministic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        return save_figure(fig, out, dpi=100)
    finally:
        plt.close(fig)
