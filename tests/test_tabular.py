"""Tests for softac.tabular: exact soft dynamic programming (SAC Lemmas 1 and 2) on finite MDPs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softac.errors import SoftacError
from softac.tabular import (
    entropy,
    iterate_to_fixed_point,
    mdp_from_gymnasium,
    named_mdp,
    optimal_value_iteration,
    random_mdp,
    soft_bellman_backup,
    soft_policy_evaluation,
    soft_policy_evaluation_exact,
    soft_policy_improvement,
    soft_policy_iteration,
    soft_policy_iteration_report,
    soft_value,
    soft_value_iteration,
)

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

n_states = st.integers(2, 8)
n_actions = st.integers(2, 4)
# Hypothesis favours small/simple floats, so mix in the hard regimes explicitly:
# gamma close to 1 (slow contraction) and the extremes of the temperature range.
gammas = st.one_of(st.floats(0.0, 0.99), st.floats(0.9, 0.99))
alphas = st.one_of(st.floats(-2.0, 1.0), st.sampled_from([-2.0, -1.0, 1.0])).map(
    lambda e: 10.0**e
)  # log-uniform-ish in [0.01, 10]
seeds = st.integers(0, 2**32 - 1)


@st.composite
def mdp_cases(draw):
    """(P, R, gamma, alpha, rng) for a random MDP; rng drives random policies / Q-functions."""
    S, A, seed = draw(n_states), draw(n_actions), draw(seeds)
    P, R = random_mdp(S, A, seed)
    return P, R, draw(gammas), draw(alphas), np.random.default_rng(seed + 1)


def random_policy(rng, S, A):
    """Dirichlet policy; occasionally with an exact zero to exercise 0 log 0."""
    pi = rng.dirichlet(np.full(A, 0.7), size=S)
    if rng.random() < 0.5:
        pi[0] = 0.0
        pi[0, rng.integers(A)] = 1.0
    return pi


def value_scale(R, gamma, alpha):
    """An upper bound on |Q| for any policy: (max|R| + alpha log A) / (1 - gamma)."""
    return (np.abs(R).max() + alpha * math.log(R.shape[1])) / (1.0 - gamma)


# ---------------------------------------------------------------------------
# Independent reference implementations (no shared code with the module)
# ---------------------------------------------------------------------------


def reference_soft_q(P, R, pi, gamma, alpha):
    """Q^pi via the reward-augmented form and a state-level matrix inverse.

    r_aug(s,a) = r(s,a) + gamma E_s'[alpha H(pi(.|s'))];  V_h = (I - gamma P^pi)^-1 r^pi,
    Q = r_aug + gamma E_s'[V_h(s')], with V_h(s) = sum_a pi(a|s) Q(s,a) the "hard" value.
    """
    S, A = R.shape
    H = np.zeros(S)
    for s in range(S):
        for a in range(A):
            if pi[s, a] > 0:
                H[s] -= pi[s, a] * math.log(pi[s, a])
    r_aug = R + gamma * (P @ (alpha * H))  # [S, A, S] @ [S] -> [S, A]
    P_state = np.zeros((S, S))
    r_state = np.zeros(S)
    for s in range(S):
        for a in range(A):
            P_state[s] += pi[s, a] * P[s, a]
            r_state[s] += pi[s, a] * r_aug[s, a]
    V_h = np.linalg.inv(np.eye(S) - gamma * P_state) @ r_state
    return r_aug + gamma * (P @ V_h)


def reference_softmax(x, alpha):
    z = x / alpha
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# Lemma 1: soft policy evaluation
# ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(mdp_cases())
def test_iterative_evaluation_converges_to_exact_solution(case):
    P, R, gamma, alpha, rng = case
    pi = random_policy(rng, *R.shape)
    tol = 1e-10
    Q_iter, n_iters = soft_policy_evaluation(P, R, pi, gamma, alpha, tol=tol)
    Q_exact = soft_policy_evaluation_exact(P, R, pi, gamma, alpha)
    assert n_iters >= 1
    scale = value_scale(R, gamma, alpha)
    # ||Q_n - Q^pi|| <= gamma tol / (1 - gamma), plus rounding in both computations.
    bound = gamma * tol / (1.0 - gamma) + 1e-14 * scale / (1.0 - gamma)
    assert np.max(np.abs(Q_iter - Q_exact)) <= bound
    # The returned iterate really is converged: one more backup moves it by < gamma * tol.
    step = soft_bellman_backup(P, R, pi, Q_iter, gamma, alpha) - Q_iter
    assert np.max(np.abs(step)) <= gamma * tol + 1e-14 * scale
    # Q^pi is the fixed point of T^pi.
    fixed = soft_bellman_backup(P, R, pi, Q_exact, gamma, alpha)
    assert np.max(np.abs(fixed - Q_exact)) <= 1e-13 * scale


@settings(max_examples=200, deadline=None)
@given(mdp_cases(), st.floats(-3.0, 3.0))
def test_soft_backup_is_gamma_contraction(case, log_scale):
    P, R, gamma, alpha, rng = case
    S, A = R.shape
    pi = random_policy(rng, S, A)
    Q1 = rng.normal(scale=10.0**log_scale, size=(S, A))
    Q2 = rng.normal(scale=10.0**log_scale, size=(S, A))
    lhs = np.max(np.abs(soft_bellman_backup(P, R, pi, Q1, gamma, alpha) - soft_bellman_backup(P, R, pi, Q2, gamma, alpha)))
    rhs = gamma * np.max(np.abs(Q1 - Q2))
    assert lhs <= rhs + 1e-12 * (1.0 + np.abs(Q1).max() + np.abs(Q2).max() + np.abs(R).max())


@settings(max_examples=200, deadline=None)
@given(mdp_cases())
def test_exact_evaluation_matches_independent_state_level_solution(case):
    P, R, gamma, alpha, rng = case
    pi = random_policy(rng, *R.shape)
    Q = soft_policy_evaluation_exact(P, R, pi, gamma, alpha)
    Q_ref = reference_soft_q(P, R, pi, gamma, alpha)
    assert Q.shape == R.shape and Q.dtype == np.float64
    assert np.max(np.abs(Q - Q_ref)) <= 1e-12 * value_scale(R, gamma, alpha)


def test_soft_value_and_entropy_handle_zero_probabilities():
    pi = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    Q = np.array([[1.0, -5.0, 7.0], [2.0, 4.0, 0.0], [0.0, 3.0, -3.0]])
    np.testing.assert_allclose(entropy(pi), [0.0, math.log(2), math.log(3)], rtol=0, atol=1e-15)
    alpha = 0.5
    expected = [1.0, 3.0 + alpha * math.log(2), 0.0 + alpha * math.log(3)]
    np.testing.assert_allclose(soft_value(Q, pi, alpha), expected, rtol=0, atol=1e-14)


def test_iterative_evaluation_raises_when_max_iters_is_too_small():
    P, R = random_mdp(4, 2, seed=3)
    pi = np.full((4, 2), 0.5)
    with pytest.raises(SoftacError):
        soft_policy_evaluation(P, R, pi, 0.9, 1.0, tol=1e-10, max_iters=5)


def test_fixed_point_loop_stops_at_the_first_change_below_tol_and_counts_steps():
    # x_k = x_{k-1} / 2 from 1: the changes are 1/2, 1/4, 1/8, ...; the first below 0.1 is 1/16 at k = 4.
    result = iterate_to_fixed_point(lambda x: x / 2.0, np.array([1.0]), tol=0.1, max_iters=10, what="halving")
    assert result.iterations == 4
    assert result.changes == [0.5, 0.25, 0.125, 0.0625]
    np.testing.assert_array_equal(result.value, [0.0625])
    with pytest.raises(SoftacError, match=r"^halving did not reach tol=0.1 within max_iters=3 iterations\.$"):
        iterate_to_fixed_point(lambda x: x / 2.0, np.array([1.0]), tol=0.1, max_iters=3, what="halving")


# ---------------------------------------------------------------------------
# Lemma 2: soft policy improvement
# ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(mdp_cases())
def test_soft_policy_improvement_never_decreases_q(case):
    P, R, gamma, alpha, rng = case
    pi_old = random_policy(rng, *R.shape)
    Q_old = soft_policy_evaluation_exact(P, R, pi_old, gamma, alpha)
    pi_new = soft_policy_improvement(Q_old, alpha)
    np.testing.assert_allclose(pi_new, reference_softmax(Q_old, alpha), rtol=0, atol=1e-12)
    Q_new = soft_policy_evaluation_exact(P, R, pi_new, gamma, alpha)
    assert np.all(Q_new >= Q_old - 1e-8 * (1.0 + np.abs(Q_old).max()))
    V_old = soft_value(Q_old, pi_old, alpha)
    V_new = soft_value(Q_new, pi_new, alpha)
    assert np.all(V_new >= V_old - 1e-8 * (1.0 + np.abs(V_old).max()))


# ---------------------------------------------------------------------------
# Soft policy iteration and soft value iteration
# ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(mdp_cases())
def test_soft_policy_iteration_reaches_soft_value_iteration_fixed_point(case):
    P, R, gamma, alpha, _ = case
    policy, Q, history = soft_policy_iteration(P, R, gamma, alpha)
    vi_tol = 1e-11
    Q_star = soft_value_iteration(P, R, gamma, alpha, vi_tol)
    scale = value_scale(R, gamma, alpha)
    q_tol = gamma * vi_tol / (1.0 - gamma) + 1e-13 * scale
    assert np.max(np.abs(Q - Q_star)) <= q_tol
    # Q* is a fixed point of the soft optimality operator.
    V_star = alpha * np.log(np.exp((Q_star - Q_star.max(1, keepdims=True)) / alpha).sum(1)) + Q_star.max(1)
    assert np.max(np.abs(R + gamma * (P @ V_star) - Q_star)) <= 2 * q_tol
    # The policy is softmax(Q*/alpha); softmax is (1/alpha)-Lipschitz in the sup norm up to a factor 2.
    pi_tol = 1e-9 + 2.0 * q_tol / alpha
    assert np.max(np.abs(policy - reference_softmax(Q_star, alpha))) <= pi_tol
    # History: one entry per iteration, monotone mean soft value (Lemma 2), converged at the end.
    assert [h["iteration"] for h in history] == list(range(len(history)))
    for h in history:
        assert {"iteration", "mean_soft_value", "policy_change", "q_error"} <= set(h)
    means = [h["mean_soft_value"] for h in history]
    assert all(b >= a - 1e-9 * (1 + abs(a)) for a, b in zip(means, means[1:]))
    assert history[-1]["policy_change"] < 1e-10
    assert history[-1]["q_error"] <= q_tol + 1e-12 * scale


@settings(max_examples=40, deadline=None)
@given(mdp_cases())
def test_soft_optimum_approaches_ordinary_optimum_as_alpha_shrinks(case):
    P, R, gamma, _, _ = case
    A = R.shape[1]
    tol = 1e-11
    V_hard = optimal_value_iteration(P, R, gamma, tol).max(axis=1)
    vi_err = 2 * gamma * tol / (1.0 - gamma) + 1e-12
    gaps = []
    for alpha in (1.0, 0.1, 0.01, 0.001):
        Q_soft = soft_value_iteration(P, R, gamma, alpha, tol)
        diff = Q_soft.max(axis=1) - V_hard
        # Entropy bonuses are non-negative, so the soft optimum is above the hard one ...
        assert diff.min() >= -vi_err
        # ... by at most alpha log|A| / (1 - gamma).
        assert diff.max() <= alpha * math.log(A) / (1.0 - gamma) + vi_err
        gaps.append(diff.max())
    # Q*_alpha is non-decreasing in alpha, so the gap shrinks (weakly) with alpha.
    assert all(b <= a + vi_err for a, b in zip(gaps, gaps[1:]))


# ---------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 1e-6])
def test_soft_policy_improvement_is_stable_for_huge_q_over_alpha(alpha):
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(6, 4)) * 1e6 * alpha
    Q[0] = 1e6 * alpha  # ties: all actions equal and huge
    pi = soft_policy_improvement(Q, alpha)
    assert np.all(np.isfinite(pi))
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pi[0], 0.25, atol=1e-12)
    assert np.all(pi[1:].argmax(axis=1) == Q[1:].argmax(axis=1))
    assert np.all(pi[1:].max(axis=1) == pytest.approx(1.0))


def test_soft_value_iteration_is_stable_for_small_alpha_and_large_rewards():
    P, R = random_mdp(8, 4, seed=11)
    R = 100.0 * R
    alpha, gamma = 0.01, 0.95
    Q = soft_value_iteration(P, R, gamma, alpha)
    assert np.all(np.isfinite(Q))
    Q_hard = optimal_value_iteration(P, R, gamma)
    gap = Q.max(axis=1) - Q_hard.max(axis=1)
    assert np.all(gap >= -1e-7) and np.all(gap <= alpha * math.log(4) / (1 - gamma) + 1e-7)
    pi = soft_policy_improvement(Q, alpha)
    assert np.all(np.isfinite(pi)) and np.allclose(pi.sum(axis=1), 1.0)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _valid():
    P, R = random_mdp(3, 2, seed=0)
    return {"P": P, "R": R, "policy": np.full((3, 2), 0.5), "Q": np.zeros((3, 2)), "gamma": 0.9, "alpha": 0.5}


def _bad_rows(P):
    P = P.copy()
    P[1, 0] *= 0.9
    return P


def _negative(P):
    P = P.copy()
    P[0, 1] = 0.0
    P[0, 1, 0], P[0, 1, 1] = 1.5, -0.5
    return P


def _nan(x):
    x = np.array(x, dtype=float)
    x.flat[0] = np.nan
    return x


MALFORMED = {
    "P rows not summing to 1": {"P": lambda v: _bad_rows(v["P"])},
    "negative probabilities": {"P": lambda v: _negative(v["P"])},
    "P not 3-D": {"P": lambda v: v["P"][:, 0, :]},
    "P not square in states": {"P": lambda v: np.concatenate([v["P"], np.zeros((3, 2, 1))], axis=2)},
    "R shape mismatch": {"R": lambda v: np.zeros((3, 3))},
    "non-finite R": {"R": lambda v: _nan(v["R"])},
    "non-finite P": {"P": lambda v: _nan(v["P"])},
    "gamma = 1": {"gamma": lambda v: 1.0},
    "gamma > 1": {"gamma": lambda v: 1.5},
    "gamma < 0": {"gamma": lambda v: -0.1},
    "gamma nan": {"gamma": lambda v: float("nan")},
    "alpha = 0": {"alpha": lambda v: 0.0},
    "alpha < 0": {"alpha": lambda v: -1.0},
}

POLICY_MALFORMED = {
    "policy rows not summing to 1": {"policy": lambda v: np.full((3, 2), 0.4)},
    "negative policy": {"policy": lambda v: np.array([[1.5, -0.5], [0.5, 0.5], [0.5, 0.5]])},
    "policy shape mismatch": {"policy": lambda v: np.full((3, 3), 1 / 3)},
}

FUNCTIONS = {
    "soft_bellman_backup": (lambda v: soft_bellman_backup(v["P"], v["R"], v["policy"], v["Q"], v["gamma"], v["alpha"])),
    "soft_policy_evaluation": (lambda v: soft_policy_evaluation(v["P"], v["R"], v["policy"], v["gamma"], v["alpha"])),
    "soft_policy_evaluation_exact": (
        lambda v: soft_policy_evaluation_exact(v["P"], v["R"], v["policy"], v["gamma"], v["alpha"])
    ),
    "soft_policy_iteration": (lambda v: soft_policy_iteration(v["P"], v["R"], v["gamma"], v["alpha"])),
    "soft_value_iteration": (lambda v: soft_value_iteration(v["P"], v["R"], v["gamma"], v["alpha"])),
    "soft_policy_iteration_report": (lambda v: soft_policy_iteration_report(v["P"], v["R"], v["gamma"], v["alpha"])),
}
POLICY_FUNCTIONS = ("soft_bellman_backup", "soft_policy_evaluation", "soft_policy_evaluation_exact")


def _cases():
    for fname in FUNCTIONS:
        for what in MALFORMED:
            yield pytest.param(fname, MALFORMED[what], id=f"{fname}-{what}")
        if fname in POLICY_FUNCTIONS:
            for what in POLICY_MALFORMED:
                yield pytest.param(fname, POLICY_MALFORMED[what], id=f"{fname}-{what}")


@pytest.mark.parametrize("fname, change", list(_cases()))
def test_malformed_input_raises_softac_error(fname, change):
    v = _valid()
    FUNCTIONS[fname](v)  # the unmodified inputs are fine
    for key, make in change.items():
        v[key] = make(v)
    with pytest.raises(SoftacError) as info:
        FUNCTIONS[fname](v)
    message = str(info.value)
    assert message and "\n" not in message


@pytest.mark.parametrize(
    "call",
    [
        lambda: soft_policy_improvement(np.zeros((2, 2)), 0.0),
        lambda: soft_policy_improvement(np.zeros(3), 1.0),
        lambda: soft_value(np.zeros((2, 2)), np.full((2, 2), 0.6), 1.0),
        lambda: soft_value(np.zeros((2, 3)), np.full((2, 2), 0.5), 1.0),
        lambda: entropy(np.array([[0.5, 0.6]])),
        lambda: optimal_value_iteration(*random_mdp(3, 2, 0), 1.0),
        lambda: random_mdp(0, 2, 0),
        lambda: soft_value_iteration(None, np.zeros((2, 2)), 0.5, 1.0),
        lambda: soft_policy_evaluation(*random_mdp(3, 2, 0), np.full((3, 2), 0.5), 0.5, 1.0, tol=0.0),
        lambda: named_mdp("no-such-mdp"),
    ],
)
def test_other_malformed_inputs_raise_softac_error(call):
    with pytest.raises(SoftacError):
        call()


# ---------------------------------------------------------------------------
# MDP constructors and the report
# ---------------------------------------------------------------------------


def test_random_mdp_is_valid_and_reproducible():
    P, R = random_mdp(7, 3, seed=5)
    assert P.shape == (7, 3, 7) and R.shape == (7, 3)
    assert P.dtype == np.float64 and R.dtype == np.float64
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    assert np.all(np.abs(R) <= 1.0)
    P2, R2 = random_mdp(7, 3, seed=5)
    assert np.array_equal(P, P2) and np.array_equal(R, R2)
    P3, _ = random_mdp(7, 3, seed=6)
    assert not np.array_equal(P, P3)
    P_named, R_named = named_mdp("random", seed=2)
    assert P_named.shape == (10, 4, 10) and R_named.shape == (10, 4)


def test_mdp_from_gymnasium_table_conversion():
    """A hand-written P table: duplicate next states accumulate; terminations go to the absorbing state."""
    table = {
        0: {0: [(0.25, 1, 1.0, False), (0.25, 1, 1.0, False), (0.5, 0, 0.0, False)], 1: [(1.0, 1, 10.0, True)]},
        1: {0: [(1.0, 1, 0.0, True)], 1: [(0.5, 0, -2.0, False), (0.5, 1, 4.0, True)]},
    }
    env = SimpleNamespace(P=table, observation_space=SimpleNamespace(n=2), action_space=SimpleNamespace(n=2))
    P, R = mdp_from_gymnasium(env)
    assert P.shape == (3, 2, 3) and R.shape == (3, 2)
    np.testing.assert_allclose(P[0, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(P[0, 1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(P[1, 1], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(P[2], [[0, 0, 1], [0, 0, 1]])
    np.testing.assert_allclose(R, [[0.5, 10.0], [0.0, 1.0], [0.0, 0.0]])
    # alpha = 0: the value after termination is exactly 0.
    assert np.all(optimal_value_iteration(P, R, 0.9)[2] == 0.0)


def test_frozenlake_conversion_and_soft_value_at_start():
    P, R = mdp_from_gymnasium("FrozenLake-v1")
    assert P.shape == (17, 4, 17) and R.shape == (17, 4)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    # Slippery: from state 0, action LEFT stays in 0 twice (1/3 + 1/3) and moves down once.
    np.testing.assert_allclose(P[0, 0, 0], 2 / 3)
    np.testing.assert_allclose(P[0, 0, 4], 1 / 3)
    # Moving RIGHT from 14 reaches the goal (reward 1, terminated) with probability 1/3.
    np.testing.assert_allclose(R[14, 2], 1 / 3)
    assert np.all(P[16, :, 16] == 1.0) and np.all(R[16] == 0.0)
    gamma, alpha = 0.99, 0.01
    Q_soft = soft_value_iteration(P, R, gamma, alpha)
    V_start = alpha * np.log(np.exp((Q_soft[0] - Q_soft[0].max()) / alpha).sum()) + Q_soft[0].max()
    assert np.isfinite(V_start) and V_start > 0
    V_hard_start = optimal_value_iteration(P, R, gamma).max(axis=1)[0]
    assert V_hard_start > 0.3  # the goal is reachable from the start
    assert 0 <= Q_soft[0].max() - V_hard_start <= alpha * math.log(4) / (1 - gamma)


def test_taxi_conversion():
    P, R = mdp_from_gymnasium("Taxi-v3")  # falls back to Taxi-v4 where v3 is deprecated
    assert P.shape == (501, 6, 501) and R.shape == (501, 6)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    assert R.max() == 20.0 and R.min() == -10.0
    done = P[:500, :, 500] == 1.0
    assert done.any() and np.all(R[:500][done] == 20.0)
    P2, R2 = named_mdp("taxi")
    assert np.array_equal(P, P2) and np.array_equal(R, R2)


def test_cliffwalking_named_mdp():
    P, R = named_mdp("cliffwalking")
    assert P.shape == (49, 4, 49)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    assert R.min() == -100.0


def test_report_table_and_plot(tmp_path):
    P, R = random_mdp(5, 3, seed=1)
    plot = tmp_path / "spi.png"
    text = soft_policy_iteration_report(P, R, 0.9, 0.3, plot_path=plot)
    _, _, history = soft_policy_iteration(P, R, 0.9, 0.3)
    lines = text.strip().splitlines()
    header = lines[1]
    for column in ("iteration", "mean soft value", "policy change", "sup-norm error"):
        assert column in header
    assert len(lines) == 3 + len(history)
    assert lines[-1].split()[0] == str(history[-1]["iteration"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert soft_policy_iteration_report(P, R, 0.9, 0.3) == text
