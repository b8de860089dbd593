"""Exact dynamic programming for maximum-entropy RL on finite MDPs.

This module is the tabular counterpart of Soft Actor-Critic: it implements,
exactly and with numpy only, the two lemmas that SAC's derivation rests on
(Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep
Reinforcement Learning with a Stochastic Actor", section 4.1):

* Lemma 1 (soft policy evaluation): for a fixed policy ``pi`` the soft Bellman
  backup ``T^pi`` is a ``gamma``-contraction whose fixed point is ``Q^pi``.
* Lemma 2 (soft policy improvement): ``pi_new(.|s) = softmax(Q^pi_old(s, .) / alpha)``
  satisfies ``Q^pi_new >= Q^pi_old`` everywhere.

together with soft value iteration (the fixed point ``Q*`` of the soft optimality
operator) and soft policy iteration (alternating the two lemmas, which
converges to ``Q*``).

Conventions
-----------
* ``P`` has shape ``[S, A, S]`` with ``P[s, a, s'] = Pr(s' | s, a)``; each
  ``P[s, a, :]`` sums to 1.  ``R`` has shape ``[S, A]`` (expected reward).
  Policies and Q-functions have shape ``[S, A]``; values and entropies ``[S]``.
* ``alpha > 0`` is the temperature, ``gamma`` in ``[0, 1)`` the discount.
  Everything is float64.
* Entropies use ``0 * log 0 = 0``, so deterministic policies are allowed.
* Malformed input raises :class:`softac.errors.SoftacError` with one sentence.

Absorbing-state convention (gymnasium toy-text MDPs)
----------------------------------------------------
:func:`mdp_from_gymnasium` turns a gymnasium ``P`` table into arrays with
``S = nS + 1`` states.  The extra last state (index ``S - 1``) is absorbing:
every action in it loops back to it with reward 0, and every transition that
gymnasium marks ``terminated=True`` is redirected there (its reward is kept).
With ``alpha = 0`` (ordinary RL) the values after termination are therefore
exactly 0.  Note that under the *soft* objective the absorbing state still
earns the entropy bonus of whatever the policy does there (its actions are all
equivalent), so its soft value is ``alpha * H(pi(.|S-1)) / (1 - gamma)``
(``alpha * log|A| / (1 - gamma)`` under the soft-optimal, uniform, policy),
not 0; a finite ``[S, A, S]`` stochastic model cannot express "the episode
stops accruing entropy".  Keep this in mind when comparing soft values across
terminal and non-terminal states.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from softac.errors import SoftacError

__all__ = [
    "entropy",
    "mdp_from_gymnasium",
    "named_mdp",
    "optimal_value_iteration",
    "random_mdp",
    "soft_bellman_backup",
    "soft_policy_evaluation",
    "soft_policy_evaluation_exact",
    "soft_policy_improvement",
    "soft_policy_iteration",
    "soft_policy_iteration_report",
    "soft_value",
    "soft_value_iteration",
]

_SUM_TOL = 1e-6
_MISSING: Any = object()  # "argument not passed to _validate" (None is invalid input, not absent)

# gymnasium ids that are missing or deprecated in some gymnasium versions, mapped
# to ids with the same default dynamics (CliffWalking-v1 only added an optional
# slippery variant; Taxi-v4 only fixed the optional rainy / fickle-passenger ones).
_ID_FALLBACKS = {
    "CliffWalking-v1": ("CliffWalking-v0",),
    "CliffWalking-v0": ("CliffWalking-v1",),
    "Taxi-v3": ("Taxi-v4",),
    "Taxi-v4": ("Taxi-v3",),
}

_NAMED_IDS = {
    "frozenlake": "FrozenLake-v1",
    "cliffwalking": "CliffWalking-v1",
    "taxi": "Taxi-v3",
}


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


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
    if np.any(arr < 0):
        raise SoftacError(f"{name} has negative probabilities (min {arr.min():.3g}).")
    worst = float(np.max(np.abs(arr.sum(axis=-1) - 1.0)))
    if worst > _SUM_TOL:
        raise SoftacError(
            f"{name} rows must sum to 1 within {_SUM_TOL:g}, but one is off by {worst:.3g}."
        )


def _validate(
    *,
    P: Any = _MISSING,
    R: Any = _MISSING,
    policy: Any = _MISSING,
    Q: Any = _MISSING,
    gamma: Any = _MISSING,
    alpha: Any = _MISSING,
    tol: Any = _MISSING,
    max_iters: Any = _MISSING,
) -> dict[str, Any]:
    """Check and convert every argument that is given; return them as float64 / float / int."""
    out: dict[str, Any] = {}
    shape: tuple[int, int] | None = None
    if P is not _MISSING:
        P = _as_float_array(P, "P")
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise SoftacError(
                f"P must have shape [S, A, S] with S, A >= 1, got shape {P.shape}."
            )
        _check_distribution(P, "P")
        shape = (P.shape[0], P.shape[1])
        out["P"] = P
    for name, value in (("R", R), ("Q", Q), ("policy", policy)):
        if value is _MISSING:
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
    if gamma is not _MISSING:
        g = _as_scalar(gamma, "gamma")
        if not 0.0 <= g < 1.0:
            raise SoftacError(f"gamma must be in [0, 1), got {g}.")
        out["gamma"] = g
    if alpha is not _MISSING:
        a = _as_scalar(alpha, "alpha")
        if a <= 0.0:
            raise SoftacError(f"alpha (the temperature) must be > 0, got {a}.")
        out["alpha"] = a
    if tol is not _MISSING:
        t = _as_scalar(tol, "tol")
        if t <= 0.0:
            raise SoftacError(f"tol must be > 0, got {t}.")
        out["tol"] = t
    if max_iters is not _MISSING:
        if isinstance(max_iters, (bool, np.bool_)) or not isinstance(max_iters, (int, np.integer)):
            raise SoftacError(f"max_iters must be a positive integer, got {max_iters!r}.")
        if max_iters < 1:
            raise SoftacError(f"max_iters must be a positive integer, got {max_iters}.")
        out["max_iters"] = int(max_iters)
    return out


# ---------------------------------------------------------------------------
# Unchecked kernels (inputs already validated)
# ---------------------------------------------------------------------------


def _entropy(policy: np.ndarray) -> np.ndarray:
    positive = policy > 0
    logp = np.log(np.where(positive, policy, 1.0))
    return -np.sum(np.where(positive, policy * logp, 0.0), axis=1)


def _soft_value(Q: np.ndarray, policy: np.ndarray, alpha: float) -> np.ndarray:
    # Only actions with pi(a|s) > 0 contribute (0 * Q is 0 for finite Q).
    return np.einsum("sa,sa->s", policy, Q) + alpha * _entropy(policy)


def _expect_next(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """E_{s' ~ P(.|s,a)}[V(s')] with shape [S, A]."""
    return np.einsum("sat,t->sa", P, V)


def _softmax(Q: np.ndarray, alpha: float) -> np.ndarray:
    z = (Q - Q.max(axis=1, keepdims=True)) / alpha
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _soft_max_value(Q: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * logsumexp(Q(s, .) / alpha), computed stably, shape [S]."""
    m = Q.max(axis=1)
    return m + alpha * np.log(np.exp((Q - m[:, None]) / alpha).sum(axis=1))


def _evaluate_exact(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float, alpha: float) -> np.ndarray:
    S, A = R.shape
    n = S * A
    # P_pi[(s,a),(s',a')] = P(s,a,s') pi(a'|s')
    P_pi = np.einsum("sat,tb->satb", P, policy).reshape(n, n)
    rhs = R + gamma * _expect_next(P, alpha * _entropy(policy))
    Q = np.linalg.solve(np.eye(n) - gamma * P_pi, rhs.reshape(n))
    return Q.reshape(S, A)


def _soft_value_iteration(P, R, gamma, alpha, tol, max_iters) -> np.ndarray:
    Q = np.zeros_like(R)
    for _ in range(max_iters):
        Q_next = R + gamma * _expect_next(P, _soft_max_value(Q, alpha))
        change = float(np.max(np.abs(Q_next - Q)))
        Q = Q_next
        if change < tol:
            return Q
    raise SoftacError(
        f"soft value iteration did not reach tol={tol:g} within max_iters={max_iters} iterations."
    )


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def entropy(policy: Any) -> np.ndarray:
    """Per-state Shannon entropy H(pi(.|s)) = -sum_a pi(a|s) log pi(a|s), with 0 log 0 = 0.

    policy: [S, A], rows summing to 1.  Returns H: [S] (nats).
    """
    v = _validate(policy=policy)
    return _entropy(v["policy"])


def soft_value(Q: Any, policy: Any, alpha: float) -> np.ndarray:
    """Soft state value V(s) = sum_a pi(a|s) [Q(s,a) - alpha log pi(a|s)] (0 log 0 = 0).

    This is the soft value used inside the soft Bellman backup (SAC eq. 3).
    Q: [S, A], policy: [S, A].  Returns V: [S].
    """
    v = _validate(Q=Q, policy=policy, alpha=alpha)
    return _soft_value(v["Q"], v["policy"], v["alpha"])


def soft_bellman_backup(P: Any, R: Any, policy: Any, Q: Any, gamma: float, alpha: float) -> np.ndarray:
    """One application of the soft Bellman backup T^pi (SAC eq. 2, Lemma 1).

    (T^pi Q)(s,a) = R(s,a) + gamma * sum_s' P(s,a,s') V(s'),
    with V(s') = sum_a' pi(a'|s') [Q(s',a') - alpha log pi(a'|s')].

    P: [S, A, S], R: [S, A], policy: [S, A], Q: [S, A].  Returns T^pi Q: [S, A].
    """
    v = _validate(P=P, R=R, policy=policy, Q=Q, gamma=gamma, alpha=alpha)
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
    v = _validate(P=P, R=R, policy=policy, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
    P, R, pi, gamma, alpha = v["P"], v["R"], v["policy"], v["gamma"], v["alpha"]
    bonus = alpha * _entropy(pi)  # the policy is fixed, so its entropy term is too
    Q = np.zeros_like(R)
    for k in range(1, v["max_iters"] + 1):
        Q_next = R + gamma * _expect_next(P, np.einsum("sa,sa->s", pi, Q) + bonus)
        change = float(np.max(np.abs(Q_next - Q)))
        Q = Q_next
        if change < v["tol"]:
            return Q, k
    raise SoftacError(
        f"soft policy evaluation did not reach tol={v['tol']:g} within max_iters={v['max_iters']} iterations."
    )


def soft_policy_evaluation_exact(P: Any, R: Any, policy: Any, gamma: float, alpha: float) -> np.ndarray:
    """Exact soft Q^pi as the solution of the linear fixed-point equation of Lemma 1.

    Solves (I - gamma P_pi) Q = R + gamma P (alpha H), where
    P_pi[(s,a),(s',a')] = P(s,a,s') pi(a'|s') is [S*A, S*A] and
    H(s') = entropy of pi(.|s').

    P: [S, A, S], R: [S, A], policy: [S, A].  Returns Q^pi: [S, A].
    """
    v = _validate(P=P, R=R, policy=policy, gamma=gamma, alpha=alpha)
    return _evaluate_exact(v["P"], v["R"], v["policy"], v["gamma"], v["alpha"])


def soft_policy_improvement(Q: Any, alpha: float) -> np.ndarray:
    """Soft policy improvement pi_new(.|s) = softmax(Q(s,.) / alpha) (SAC eq. 4, Lemma 2).

    For a finite action set this is the exact minimiser of
    KL(pi(.|s) || exp(Q(s,.)/alpha) / Z(s)).  Computed stably by subtracting
    the row maximum first, so Q/alpha of order 1e6 (or more) does not overflow.

    Q: [S, A].  Returns policy: [S, A].
    """
    v = _validate(Q=Q, alpha=alpha)
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
    v = _validate(P=P, R=R, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
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
    v = _validate(P=P, R=R, gamma=gamma, tol=tol, max_iters=max_iters)
    P, R, gamma = v["P"], v["R"], v["gamma"]
    Q = np.zeros_like(R)
    for _ in range(v["max_iters"]):
        Q_next = R + gamma * _expect_next(P, Q.max(axis=1))
        change = float(np.max(np.abs(Q_next - Q)))
        Q = Q_next
        if change < v["tol"]:
            return Q
    raise SoftacError(
        f"value iteration did not reach tol={v['tol']:g} within max_iters={v['max_iters']} iterations."
    )


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
    v = _validate(P=P, R=R, gamma=gamma, alpha=alpha, tol=tol, max_iters=max_iters)
    P, R, gamma, alpha = v["P"], v["R"], v["gamma"], v["alpha"]
    S, A = R.shape
    # Q* to near machine precision: stop once the change is at rounding level of the value scale.
    scale = (float(np.abs(R).max()) + alpha * math.log(A)) / (1.0 - gamma)
    star_tol = max(1e-13, 64 * np.finfo(np.float64).eps * scale)
    Q_star = _soft_value_iteration(P, R, gamma, alpha, star_tol, 10_000_000)
    policy = np.full((S, A), 1.0 / A)
    history: list[dict[str, float]] = []
    for k in range(v["max_iters"]):
        Q = _evaluate_exact(P, R, policy, gamma, alpha)
        new_policy = _softmax(Q, alpha)
        change = float(np.max(np.abs(new_policy - policy)))
        history.append(
            {
                "iteration": k,
                "mean_soft_value": float(np.mean(_soft_value(Q, policy, alpha))),
                "policy_change": change,
                "q_error": float(np.max(np.abs(Q - Q_star))),
            }
        )
        if change < v["tol"]:
            return policy, Q, history
        policy = new_policy
    raise SoftacError(
        f"soft policy iteration did not reach tol={v['tol']:g} within max_iters={v['max_iters']} iterations."
    )


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
    v = _validate(P=P, R=R, gamma=gamma, alpha=alpha)
    S, A = v["R"].shape
    _, _, history = soft_policy_iteration(v["P"], v["R"], v["gamma"], v["alpha"])
    header = ("iteration", "mean soft value", "policy change", "sup-norm error vs soft VI")
    rows = [
        (
            str(h["iteration"]),
            f"{h['mean_soft_value']:.10g}",
            f"{h['policy_change']:.3e}",
            f"{h['q_error']:.3e}",
        )
        for h in history
    ]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = [
        f"soft policy iteration: S={S}, A={A}, gamma={v['gamma']:g}, alpha={v['alpha']:g}, "
        f"{len(history)} iterations",
        "  ".join(h.rjust(w) for h, w in zip(header, widths)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    if plot_path is not None:
        _plot_history(history, plot_path, title=f"soft policy iteration (gamma={v['gamma']:g}, alpha={v['alpha']:g})")
    return "\n".join(lines) + "\n"


def _plot_history(history: list[dict[str, float]], plot_path: Any, title: str) -> None:
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


# ---------------------------------------------------------------------------
# MDP constructors
# ---------------------------------------------------------------------------


def random_mdp(n_states: int, n_actions: int, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """A random finite MDP, reproducible from ``seed``.

    Each row P[s, a, :] is Dirichlet(0.5) with about 30% of its entries zeroed
    (the largest is always kept) and renormalised; rewards are uniform in [-1, 1].
    Returns P: [n_states, n_actions, n_states] and R: [n_states, n_actions].
    """
    for name, n in (("n_states", n_states), ("n_actions", n_actions)):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SoftacError(f"{name} must be a positive integer, got {n!r}.")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise SoftacError(f"seed must be a non-negative integer (or None), got {seed!r}.") from exc
    S, A = int(n_states), int(n_actions)
    P = rng.dirichlet(np.full(S, 0.5), size=(S, A))
    drop = rng.random((S, A, S)) < 0.3
    np.put_along_axis(drop, P.argmax(axis=2)[..., None], False, axis=2)
    P = np.where(drop, 0.0, P)
    P /= P.sum(axis=2, keepdims=True)
    R = rng.uniform(-1.0, 1.0, size=(S, A))
    return P, R


def _make_env(env_id: str) -> Any:
    import gymnasium as gym

    last_exc: Exception | None = None
    for candidate in (env_id, *_ID_FALLBACKS.get(env_id, ())):
        try:
            with warnings.catch_warnings():
                # gymnasium warns before raising DeprecatedEnv; the fallback handles it.
                warnings.simplefilter("ignore", DeprecationWarning)
                return gym.make(candidate)
        except gym.error.Error as exc:  # NameNotFound, VersionNotFound, DeprecatedEnv, ...
            last_exc = exc
    raise SoftacError(f"gymnasium cannot make the environment {env_id!r}: {last_exc}") from last_exc


def mdp_from_gymnasium(env_or_id: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert a gymnasium toy-text env with a transition table into (P, R) arrays.

    ``env_or_id`` is an env (``env.unwrapped.P[s][a]`` is a list of
    ``(prob, next_state, reward, terminated)``) or an id such as
    ``"FrozenLake-v1"``, ``"CliffWalking-v1"`` or ``"Taxi-v3"`` (renamed ids
    fall back to their equivalent, e.g. CliffWalking-v0, Taxi-v4).

    R[s, a] = sum prob * reward.  Probabilities of repeated next states are
    accumulated.  Terminated transitions go to one extra absorbing state
    (index nS, reward 0, self-loops), so S = nS + 1; see the module docstring
    for what this means for soft values.

    Returns P: [nS + 1, nA, nS + 1] and R: [nS + 1, nA].
    """
    created = isinstance(env_or_id, str)
    env = _make_env(env_or_id) if created else env_or_id
    try:
        base = getattr(env, "unwrapped", env)
        table = getattr(base, "P", None)
        if not isinstance(table, dict):
            raise SoftacError("the environment has no transition table `unwrapped.P`; only toy-text envs do.")
        try:
            nS = int(base.observation_space.n)
            nA = int(base.action_space.n)
        except AttributeError as exc:
            raise SoftacError("the environment must have Discrete observation and action spaces.") from exc
        absorbing = nS
        S = nS + 1
        P = np.zeros((S, nA, S))
        R = np.zeros((S, nA))
        for s in range(nS):  # table conversion, not math: the P table is a Python dict
            for a in range(nA):
                for prob, next_state, reward, terminated, *_ in table[s][a]:
                    target = absorbing if terminated else int(next_state)
                    P[s, a, target] += prob
                    R[s, a] += prob * reward
        P[absorbing, :, absorbing] = 1.0
    finally:
        if created:
            env.close()
    _validate(P=P, R=R)
    return P, R


def named_mdp(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A named MDP as (P, R): 'frozenlake' | 'cliffwalking' | 'taxi' (gymnasium, with the
    absorbing terminal state, see :func:`mdp_from_gymnasium`) or 'random'
    (:func:`random_mdp` with 10 states, 4 actions and the given seed).

    Returns P: [S, A, S] and R: [S, A].  Unknown names raise SoftacError.
    """
    key = str(name).strip().lower()
    if key == "random":
        return random_mdp(10, 4, seed)
    if key in _NAMED_IDS:
        return mdp_from_gymnasium(_NAMED_IDS[key])
    raise SoftacError(
        f"unknown MDP {name!r}; choose one of 'frozenlake', 'cliffwalking', 'taxi', 'random'."
    )
