"""The soft policy iteration report: a plain-text table of its history and, optionally, a PNG plot."""

from __future__ import annotations

from typing import Any

import numpy as np

from softac.tabular.solvers import soft_policy_iteration
from softac.tabular.validation import validate_arguments

__all__ = ["soft_policy_iteration_report"]

_COLUMNS = ("iteration", "mean soft value", "policy change", "sup-norm error vs soft VI")


def soft_policy_iteration_report(
    P: Any,
    R: Any,
    gamma: float,
    alpha: float,
    plot_path: Any = None,
) -> str:
    """Run :func:`soft_policy_iteration` and return a plain-text table of its history.

    Columns: iteration, mean soft value (mean over states of V^{pi_k}), policy
    change (max |pi_{k+1} - pi_k|) and sup-norm error ||Q^{pi_k} - Q*||_inf
    against soft value iteration.  If ``plot_path`` is given, also writes a PNG
    there (matplotlib, Agg canvas) of the mean soft value and log10 of the
    sup-norm error per iteration.

    P: [S, A, S], R: [S, A].  Returns the table as a string.
    """
    v = validate_arguments(P=P, R=R, gamma=gamma, alpha=alpha)
    S, A = v["R"].shape
    _, _, history = soft_policy_iteration(v["P"], v["R"], v["gamma"], v["alpha"])
    rows = [
        (
            str(h["iteration"]),
            f"{h['mean_soft_value']:.10g}",
            f"{h['policy_change']:.3e}",
            f"{h['q_error']:.3e}",
        )
        for h in history
    ]
    widths = [max(len(_COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(_COLUMNS))]
    lines = [
        f"soft policy iteration: S={S}, A={A}, gamma={v['gamma']:g}, alpha={v['alpha']:g}, "
        f"{len(history)} iterations",
        "  ".join(h.rjust(w) for h, w in zip(_COLUMNS, widths)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    if plot_path is not None:
        _plot_history(history, plot_path, title=f"soft policy iteration (gamma={v['gamma']:g}, alpha={v['alpha']:g})")
    return "\n".join(lines) + "\n"


def _plot_history(history: list[dict[str, float]], plot_path: Any, title: str) -> None:
    """Two panels per iteration: mean soft value, and log10 ||Q^{pi_k} - Q*||_inf; saved to plot_path."""
    from softac.figures import save_figure

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    it = [h["iteration"] for h in history]
    mean_v = [h["mean_soft_value"] for h in history]
    log_err = np.log10(np.maximum([h["q_error"] for h in history], 1e-16))
    fig = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(it, mean_v, marker="o")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("mean soft value")
    ax2.plot(it, log_err, marker="o", color="tab:red")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("log10 ||Q - Q*||_inf")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, plot_path)
