"""Exact soft dynamic programming on a finite MDP (docs/algorithms.md, "Soft policy evaluation and
improvement (finite MDPs)").

Implements, exactly and with numpy only, the two lemmas that SAC's derivation rests on
(Haarnoja et al. 2018a, section 4.1):

* Lemma 1 (soft policy evaluation): for a fixed policy ``pi`` the soft Bellman backup ``T^pi``
  is a ``gamma``-contraction whose fixed point is ``Q^pi``.
* Lemma 2 (soft policy improvement): ``pi_new(.|s) = softmax(Q^pi_old(s, .) / alpha)``
  satisfies ``Q^pi_new >= Q^pi_old`` everywhere.

together with soft value iteration (the fixed point ``Q*`` of the soft optimality operator),
ordinary (alpha = 0) value iteration, and soft policy iteration (alternating the two lemmas,
which converges to ``Q*``).  Every iterative solver loops through
:func:`softac.tabular.fixed_point.iterate_to_fixed_point`.

Shapes: P [S, A, S], R / Q / policy [S, A], values and entropies [S]; everything float64.
Public functions validate their arguments; the ``_``-prefixed kernels take validated arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softac.tabular.fixed_point import iterate_to_fixed_point
from softac.tabular.validation import validate_arguments

__all__ = [
    "entropy",
    "optimal_value_iteration",
    "soft_bellman_backup",
    "soft_policy_evaluation",
    "soft_policy_evaluation_exact",
    "soft_policy_improvement",
    "soft_policy_iteration",
    "soft_value",
    "soft_value_iteration",
]


# ---------------------------------------------------------------------------
# Unchecked kernels (inputs already validated)
# ---------------------------------------------------------------------------


def _entropy(policy: np.ndarray) -> np.ndarray:
    """H(pi(.|s)) = -sum_a pi log pi with 0 log 0 = 0; policy [S, A] -> [S]."""
    positive = policy > 0
    logp = np.log(np.where(positive, policy, 1.0))
    return -np.sum(np.where(positive, policy * logp, 0.0), axis=1)


def _soft_value(Q: np.ndarray, policy: np.ndarray, alpha: float) -> np.ndarray:
    """V(s) = sum_a pi(a|s) Q(s,a) + alpha H(pi(.|s)); [S, A] -> [S]."""
    # Only actions with pi(a|s) > 0 contribute (0 * Q is 0 for finite Q).
    return np.einsum("sa,sa->s", policy, Q) + alpha * _entropy(policy)


def _expect_next(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """E_{s' ~ P(.|s,a)}[V(s')] with shape [S, A]."""
    return np.einsum("sat,t->sa", P, V)


def _softmax(Q: np.ndarray, alpha: float) -> np.ndarray:
    """softmax(Q(s, .) / alpha) per row, shifted by the row maximum; [S, A] -> [S, A]."""
    z = (Q - Q.max(axis=1, keepdims=True)) / alpha
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _soft_max_value(Q: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * logsumexp(Q(s, .) / alpha), computed stably, shape [S]."""
    m = Q.max(axis=1)
    return m + alpha * np.log(np.exp((Q - m[:, None]) / alpha).sum(axis=1))


def _evaluate_exact(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float, alpha: float) -> np.ndarray:
    """Q^pi from the linear system (I - gamma P_pi) Q = R + gamma P (alpha H); returns [S, A]."""
    S, A = R.shape
    n = S * A
    # P_pi[(s,a),(s',a')] = P(s,a,s') pi(a'|s')
    P_pi = np.einsum("sat,tb->satb", P, policy).reshape(n, n)
    rhs = R + gamma * _expect_next(P, alpha * _entropy(policy))
    Q = np.linalg.solve(np.eye(n) - gamma * P_pi, rhs.reshape(n))
    return Q.reshape(S, A)


def _soft_value_iteration(P, R, gamma, alpha, tol, max_iters) -> np.ndarray:
    """Q <- R + gamma P [alpha logsumexp(Q/alpha)] from Q = 0 to tol; returns Q* [S, A]."""

    def soft_optimality_backup(Q: np.ndarray) -> np.ndarray:
        return R + gamma * _expect_next(P, _soft_max_value(Q, alpha))

    return iterate_to_fixed_point(
        soft_optimality_backup, np.zeros_like(R), tol, max_iters, what="soft value iteration"
    ).value


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def entropy(policy: Any) -> np.ndarray:
    """Per-state Shannon entropy H(pi(.|s)) = -sum_a pi(a|s) log pi(a|s), with 0 log 0 = 0.

    policy: [S, A], rows summing to 1.  Returns H: [S] (nats).
    """
    v = validate_arguments(policy=policy)
    return _entropy(v["policy"])


def soft_value(Q: Any, policy: Any, alpha: float) -> np.ndarray:
    """Soft state value V(s) = sum_a pi(a|s) [Q(s,a) - alpha log pi(a|s)] (0 log 0 = 0).

    This is the soft value used inside the soft Bellman backup (SAC eq. 3).
    Q: [S, A], policy: [S, A].  Returns V: [S].
    """
    v = validate_arguments(Q=Q, policy=policy, alpha=alpha)
    return _soft_value(v["Q"], v["policy"], v["alpha"])


def soft_bellman_backup(P: Any, R: Any, policy: Any, Q: Any, gamma: float, alpha: float) -> np.ndarray:
    """One application of the soft Bellman backup T^pi (SAC eq. 2, Lemma 1).

    (T^pi Q)(s,a) = R(s,a) + gamma * sum_s' P(s,a,s') V(s'),
    with V(s') = sum_a' pi(a'|s') [Q(s',a') - alpha log pi(a'|s')].

    P: [S, A, S], R: [S, A], policy: [S, A], Q: [S, A].  Returns T^pi Q: [S, A].
    """
    v = validate_arguments(P=P, R=R, policy=policy, Q=Q, gamma=gamma, alpha=alpha)
    V = _soft_value(v["Q"], v["policy"], v["alpha"])
    return v["R"] + v["gamma"] * _expect_next(v["P"], V)


def soft_policy_evaluation(
    P: Any,
    R: Any,
    policy: Any,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iters: int = 100_000,
) -> tuple[np.ndarray, int]:
    """Soft policy evaluation by iterating Q <- T^pi Q from Q = 0 (Lemma 1).

    Stops at the first iteration whose sup-norm change ||Q_k - Q_{k-1}||_inf is
    below ``tol``; then ||Q_k - Q^pi||_inf <= gamma * tol / (1 - gamma).
    Raises SoftacError if ``max_iters`` backups are not enough.

    P: [S, A, S], R: [S, A], policy: [S, A].  Returns (Q: [S, A], n_iters).
    """
    v = validate_arguments(P=P, R=R, policy=policy, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
    P, R, pi, gamma, alpha = v["P"], v["R"], v["policy"], v["gamma"], v["alpha"]
    entropy_bonus = alpha * _entropy(pi)  # the policy is fixed, so its entropy term is too

    def soft_backup(Q: np.ndarray) -> np.ndarray:
        return R + gamma * _expect_next(P, np.einsum("sa,sa->s", pi, Q) + entropy_bonus)

    result = iterate_to_fixed_point(
        soft_backup, np.zeros_like(R), v["tol"], v["max_iters"], what="soft policy evaluation"
    )
    return result.value, result.iterations


def soft_policy_evaluation_exact(P: Any, R: Any, policy: Any, gamma: float, alpha: float) -> np.ndarray:
    """Exact soft Q^pi as the solution of the linear fixed-point equation of Lemma 1.

    Solves (I - gamma P_pi) Q = R + gamma P (alpha H), where
    P_pi[(s,a),(s',a')] = P(s,a,s') pi(a'|s') is [S*A, S*A] and
    H(s') = entropy of pi(.|s').

    P: [S, A, S], R: [S, A], policy: [S, A].  Returns Q^pi: [S, A].
    """
    v = validate_arguments(P=P, R=R, policy=policy, gamma=gamma, alpha=alpha)
    return _evaluate_exact(v["P"], v["R"], v["policy"], v["gamma"], v["alpha"])


def soft_policy_improvement(Q: Any, alpha: float) -> np.ndarray:
    """Soft policy improvement pi_new(.|s) = softmax(Q(s,.) / alpha) (SAC eq. 4, Lemma 2).

    For a finite action set this is the exact minimiser of
    KL(pi(.|s) || exp(Q(s,.)/alpha) / Z(s)).  Computed stably by subtracting
    the row maximum first, so Q/alpha of order 1e6 (or more) does not overflow.

    Q: [S, A].  Returns policy: [S, A].
    """
    v = validate_arguments(Q=Q, alpha=alpha)
    return _softmax(v["Q"], v["alpha"])


def soft_value_iteration(
    P: Any,
    R: Any,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iters: int = 100_000,
) -> np.ndarray:
    """Soft value iteration for the soft-optimal Q*.

    Iterates Q(s,a) <- R(s,a) + gamma sum_s' P(s,a,s') alpha logsumexp(Q(s',.)/alpha)
    from Q = 0 until the sup-norm change is below ``tol`` (then
    ||Q - Q*||_inf <= gamma * tol / (1 - gamma)); the soft-optimal policy is
    softmax(Q*/alpha).  Raises SoftacError if ``max_iters`` is reached first.

    P: [S, A, S], R: [S, A].  Returns Q*: [S, A].
    """
    v = validate_arguments(P=P, R=R, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
    return _soft_value_iteration(v["P"], v["R"], v["gamma"], v["alpha"], v["tol"], v["max_iters"])


def optimal_value_iteration(
    P: Any,
    R: Any,
    gamma: float,
    tol: float = 1e-10,
    max_iters: int = 100_000,
) -> np.ndarray:
    """Ordinary (alpha = 0) value iteration: Q(s,a) <- R(s,a) + gamma sum_s' P(s,a,s') max_a' Q(s',a').

    Stops when the sup-norm change is below ``tol``; raises SoftacError if
    ``max_iters`` is reached first.  P: [S, A, S], R: [S, A].  Returns Q: [S, A].
    """
    v = validate_arguments(P=P, R=R, gamma=gamma, tol=tol, max_iters=max_iters)
    P, R, gamma = v["P"], v["R"], v["gamma"]

    def optimality_backup(Q: np.ndarray) -> np.ndarray:
        return R + gamma * _expect_next(P, Q.max(axis=1))

    return iterate_to_fixed_point(
        optimality_backup, np.zeros_like(R), v["tol"], v["max_iters"], what="value iteration"
    ).value


def soft_policy_iteration(
    P: Any,
    R: Any,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iters: int = 1_000,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
    """Soft policy iteration: alternate exact soft evaluation (Lemma 1) and soft improvement (Lemma 2).

    Starts from the uniform policy.  Iteration k evaluates pi_k exactly, then
    forms pi_{k+1} = softmax(Q^{pi_k}/alpha); it stops when
    max |pi_{k+1} - pi_k| < tol (Theorem 1: the limit is the soft-optimal policy).

    Returns ``(policy, Q, history)``: ``policy`` is the last evaluated policy
    pi_k, ``Q = Q^{pi_k}`` (a consistent pair, with
    max |softmax(Q/alpha) - policy| < tol), and ``history`` has one dict per
    iteration with keys ``iteration`` (0 = uniform policy), ``mean_soft_value``
    (mean over states of V^{pi_k}), ``policy_change`` (max |pi_{k+1} - pi_k|)
    and ``q_error`` (||Q^{pi_k} - Q*||_inf, with Q* from soft_value_iteration
    computed once up front).  Raises SoftacError if ``max_iters`` is reached.

    P: [S, A, S], R: [S, A].  Returns policy: [S, A], Q: [S, A], history.
    """
    v = validate_arguments(P=P, R=R, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
    P, R, gamma, alpha = v["P"], v["R"], v["gamma"], v["alpha"]
    S, A = R.shape
    # Q* to near machine precision: stop once the change is at rounding level of the value scale.
    scale = (float(np.abs(R).max()) + alpha * math.log(A)) / (1.0 - gamma)
    star_tol = max(1e-13, 64 * np.finfo(np.float64).eps * scale)
    Q_star = _soft_value_iteration(P, R, gamma, alpha, star_tol, 10_000_000)

    evaluated: list[tuple[np.ndarray, np.ndarray]] = []  # (pi_k, Q^{pi_k}) for k = 0, 1, ...

    def evaluate_then_improve(policy: np.ndarray) -> np.ndarray:
        Q = _evaluate_exact(P, R, policy, gamma, alpha)
        evaluated.append((policy, Q))
        return _softmax(Q, alpha)

    uniform_policy = np.full((S, A), 1.0 / A)
    result = iterate_to_fixed_point(
        evaluate_then_improve, uniform_policy, v["tol"], v["max_iters"], what="soft policy iteration"
    )
    history = [
        {
            "iteration": k,
            "mean_soft_value": float(np.mean(_soft_value(Q, policy, alpha))),
            "policy_change": change,
            "q_error": float(np.max(np.abs(Q - Q_star))),
        }
        for k, ((policy, Q), change) in enumerate(zip(evaluated, result.changes))
    ]
    policy, Q = evaluated[-1]
    return policy, Q, history
