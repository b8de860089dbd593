"""Checks on the arguments of the tabular solvers: shapes, probabilities, gamma, alpha, tol, max_iters.

Every check converts what it accepts (arrays to float64, scalars to float, max_iters to int)
and raises :class:`softac.errors.SoftacError` with one sentence for what it rejects.
Shapes follow the package conventions: P [S, A, S], R / Q / policy [S, A].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softac.errors import SoftacError

__all__ = ["MISSING", "PROBABILITY_SUM_TOL", "validate_arguments"]

PROBABILITY_SUM_TOL = 1e-6
"""How far from 1 a row of P or of a policy may sum."""

MISSING: Any = object()
"""Marks an argument not passed to :func:`validate_arguments` (None is invalid input, not absent)."""


def _as_float_array(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise SoftacError(f"{name} is required but got None.")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SoftacError(f"{name} must be an array of real numbers.") from exc
    if not np.all(np.isfinite(arr)):
        raise SoftacError(f"{name} contains non-finite entries (nan or inf).")
    return arr


def _as_scalar(x: Any, name: str) -> float:
    if x is None:
        raise SoftacError(f"{name} is required but got None.")
    if isinstance(x, (bool, np.bool_)):
        raise SoftacError(f"{name} must be a real number, got a boolean.")
    try:
        value = float(x)
    except (TypeError, ValueError) as exc:
        raise SoftacError(f"{name} must be a real number, got {x!r}.") from exc
    if not math.isfinite(value):
        raise SoftacError(f"{name} must be finite, got {value}.")
    return value


def _check_distribution(arr: np.ndarray, name: str) -> None:
    """Rows along the last axis are probability distributions (non-negative, summing to 1)."""
    if np.any(arr < 0):
        raise SoftacError(f"{name} has negative probabilities (min {arr.min():.3g}).")
    worst = float(np.max(np.abs(arr.sum(axis=-1) - 1.0)))
    if worst > PROBABILITY_SUM_TOL:
        raise SoftacError(
            f"{name} rows must sum to 1 within {PROBABILITY_SUM_TOL:g}, but one is off by {worst:.3g}."
        )


def validate_arguments(
    *,
    P: Any = MISSING,
    R: Any = MISSING,
    policy: Any = MISSING,
    Q: Any = MISSING,
    gamma: Any = MISSING,
    alpha: Any = MISSING,
    tol: Any = MISSING,
    max_iters: Any = MISSING,
) -> dict[str, Any]:
    """Check and convert every argument that is given; return them as float64 / float / int.

    P must be [S, A, S] with rows P[s, a, :] summing to 1; R, Q and policy must be [S, A]
    with the same S, A (policy rows summing to 1); gamma in [0, 1); alpha > 0; tol > 0;
    max_iters a positive integer.  Returns a dict keyed by the argument names given.
    """
    out: dict[str, Any] = {}
    shape: tuple[int, int] | None = None
    if P is not MISSING:
        P = _as_float_array(P, "P")
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise SoftacError(
                f"P must have shape [S, A, S] with S, A >= 1, got shape {P.shape}."
            )
        _check_distribution(P, "P")
        shape = (P.shape[0], P.shape[1])
        out["P"] = P
    for name, value in (("R", R), ("Q", Q), ("policy", policy)):
        if value is MISSING:
            continue
        arr = _as_float_array(value, name)
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise SoftacError(f"{name} must have shape [S, A] with S, A >= 1, got {arr.shape}.")
        if shape is None:
            shape = arr.shape  # type: ignore[assignment]
        elif arr.shape != shape:
            raise SoftacError(f"{name} must have shape [S, A] = {list(shape)}, got {list(arr.shape)}.")
        if name == "policy":
            _check_distribution(arr, "policy")
        out[name] = arr
    if gamma is not MISSING:
        g = _as_scalar(gamma, "gamma")
        if not 0.0 <= g < 1.0:
            raise SoftacError(f"gamma must be in [0, 1), got {g}.")
        out["gamma"] = g
    if alpha is not MISSING:
        a = _as_scalar(alpha, "alpha")
        if a <= 0.0:
            raise SoftacError(f"alpha (the temperature) must be > 0, got {a}.")
        out["alpha"] = a
    if tol is not MISSING:
        t = _as_scalar(tol, "tol")
        if t <= 0.0:
            raise SoftacError(f"tol must be > 0, got {t}.")
        out["tol"] = t
    if max_iters is not MISSING:
        if isinstance(max_iters, (bool, np.bool_)) or not isinstance(max_iters, (int, np.integer)):
            raise SoftacError(f"max_iters must be a positive integer, got {max_iters!r}.")
        if max_iters < 1:
            raise SoftacError(f"max_iters must be a positive integer, got {max_iters}.")
        out["max_iters"] = int(max_iters)
    return out
