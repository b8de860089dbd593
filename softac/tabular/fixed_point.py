"""The one convergence loop of the tabular solvers: apply a map until the max-norm change is below tol.

Soft policy evaluation, soft value iteration, ordinary value iteration and soft policy iteration
all iterate a map x_k = step(x_{k-1}) from a starting point and stop at the first k with
||x_k - x_{k-1}||_inf < tol (docs/algorithms.md, "Soft policy evaluation and improvement
(finite MDPs)").  For a gamma-contraction this bounds the distance to the fixed point:
||x_k - x*||_inf <= gamma * tol / (1 - gamma).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from softac.errors import SoftacError

__all__ = ["FixedPoint", "iterate_to_fixed_point"]


class FixedPoint(NamedTuple):
    """Where :func:`iterate_to_fixed_point` stopped."""

    value: np.ndarray
    """The last iterate x_k (same shape as x0)."""
    iterations: int
    """k, the number of times ``step`` was applied (1 <= k <= max_iters)."""
    changes: list[float]
    """||x_j - x_{j-1}||_inf for j = 1..k; the last one is below tol."""


def iterate_to_fixed_point(
    step: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    tol: float,
    max_iters: int,
    what: str,
) -> FixedPoint:
    """Iterate x_k = step(x_{k-1}) from x_0 = x0 until ||x_k - x_{k-1}||_inf < tol.

    ``tol`` > 0 and ``max_iters`` >= 1 are assumed already validated.  Raises SoftacError
    "<what> did not reach tol=... within max_iters=... iterations." if ``max_iters``
    applications of ``step`` are not enough.  Returns a :class:`FixedPoint`.
    """
    x = x0
    changes: list[float] = []
    for k in range(1, max_iters + 1):
        x_next = step(x)
        change = float(np.max(np.abs(x_next - x)))
        changes.append(change)
        x = x_next
        if change < tol:
            return FixedPoint(value=x, iterations=k, changes=changes)
    raise SoftacError(f"{what} did not reach tol={tol:g} within max_iters={max_iters} iterations.")
