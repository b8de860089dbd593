"""Finite MDPs as arrays (P [S, A, S], R [S, A]): random ones, gymnasium toy-text ones, and by name.

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

import warnings
from typing import Any

import numpy as np

from softac.errors import SoftacError
from softac.tabular.validation import validate_arguments

__all__ = ["mdp_from_gymnasium", "named_mdp", "random_mdp"]

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
    """gymnasium.make(env_id), falling back to an equivalent id this gymnasium version knows."""
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
    validate_arguments(P=P, R=R)
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
