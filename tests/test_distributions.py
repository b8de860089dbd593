"""Tests for softac.distributions: the tanh-squashed Gaussian policy distribution.

u ~ N(mu, sigma), a = tanh(u), log pi(a) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2).
Every expected value below is computed independently in float64 numpy from closed forms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac.distributions import (
    gaussian_log_prob,
    squashed_gaussian_log_prob,
    squashed_gaussian_mode,
    squashed_gaussian_sample,
    tanh_log_det_jacobian,
)


def enable_x64():
    """A local float64 context: jax.experimental.enable_x64 in older JAX, jax.enable_x64(True) in newer."""
    try:
        from jax.experimental import enable_x64 as _enable_x64
    except ImportError:
        return jax.enable_x64(True)
    return _enable_x64()


def _np_normal_pdf(x, mu, s):
    return np.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2.0 * math.pi))


def _np_squashed_density(a, mu, s):
    """p_a(a) = prod_i N(atanh(a_i); mu_i, s_i) / (1 - a_i^2), by the change of variables (float64)."""
    a, mu, s = (np.asarray(x, np.float64) for x in (a, mu, s))
    return np.prod(_np_normal_pdf(np.arctanh(a), mu, s) / (1.0 - a**2), axis=-1)


# ---------------------------------------------------------------------------------- log-prob
CASES = [
    # (mean, log_std, actions) with moderate |u| = |atanh(a)|
    ([0.0], [0.0], [[-0.9], [-0.3], [0.0], [0.5], [0.95]]),
    ([0.7], [-1.0], [[0.1], [0.6], [0.8], [-0.2]]),
    ([-1.5], [0.8], [[-0.99], [-0.5], [0.3], [0.97]]),
    ([0.3, -0.8, 1.2], [0.1, -0.5, 0.6], [[0.2, -0.6, 0.9], [-0.7, 0.0, 0.5], [0.95, -0.95, -0.1]]),
    ([0.0, 2.0, -2.0], [-2.0, 0.0, 1.0], [[0.01, 0.9, -0.99], [-0.05, 0.99, 0.4]]),
]


@pytest.mark.parametrize("mean, log_std, actions", CASES)
def test_log_prob_matches_change_of_variables_density(mean, log_std, actions):
    actions = np.asarray(actions, np.float64)
    mean64 = np.broadcast_to(np.asarray(mean, np.float64), actions.shape)
    log_std64 = np.broadcast_to(np.asarray(log_std, np.float64), actions.shape)
    expected = np.log(_np_squashed_density(actions, mean64, np.exp(log_std64)))

    u = np.arctanh(actions)
    got = squashed_gaussian_log_prob(jnp.asarray(u, jnp.float32), jnp.asarray(mean64, jnp.float32),
                                     jnp.asarray(log_std64, jnp.float32))
    assert got.shape == actions.shape[:-1]
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=1e-4, atol=2e-4)


def test_gaussian_log_prob_is_the_diagonal_normal_log_density():
    u = np.array([[0.3, -1.2], [2.0, 0.0]])
    mean = np.array([[0.0, -1.0], [1.0, 0.5]])
    log_std = np.array([[0.0, -0.7], [0.4, 1.1]])
    expected = np.sum(np.log(_np_normal_pdf(u, mean, np.exp(log_std))), axis=-1)
    got = gaussian_log_prob(*(jnp.asarray(x, jnp.float32) for x in (u, mean, log_std)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mu, sigma", [(0.0, 0.3), (1.5, 1.0), (-2.0, 3.0), (0.0, 4.0)])
def test_density_integrates_to_one_over_the_action_interval(mu, sigma):
    """Trapezoid in a-space on the nodes a_k = tanh(u_k) of a fine uniform u-grid (dense near the edges).

    Near |a| = 1 the node spacing is far below float64's resolution of a itself, so the differences
    a_{k+1} - a_k are taken from the exactly computable distances to the nearer edge:
    1 - tanh(u) = 2 / (exp(2u) + 1) for u >= 0 and 1 + tanh(u) = 2 / (exp(-2u) + 1) for u < 0.
    """
    lo, hi = mu - 12.0 * sigma, mu + 12.0 * sigma
    u = np.linspace(lo, hi, 200_001)
    with enable_x64():
        log_p = squashed_gaussian_log_prob(jnp.asarray(u[:, None]), jnp.asarray([mu]),
                                           jnp.asarray([math.log(sigma)]))
        assert log_p.dtype == jnp.float64
        p = np.exp(np.asarray(log_p))
    # a = 1 - b for u >= 0, a = c - 1 for u < 0: differences of a are differences of -b or of c.
    b = 2.0 / (np.exp(2.0 * u) + 1.0)
    c = 2.0 / (np.exp(-2.0 * u) + 1.0)
    shifted = np.where(u >= 0, 1.0 - b, c - 1.0)  # = tanh(u)
    da = np.where(u[:-1] >= 0, -np.diff(b), np.diff(c))
    crossing = (u[:-1] < 0) & (u[1:] >= 0)
    da[crossing] = np.diff(shifted)[crossing]
    assert np.all(da > 0)
    mass = 0.5 * (p[1:] + p[:-1]) * da
    total = np.sum(mass)
    assert abs(total - 1.0) < 1e-4, total
    if sigma >= 3.0:
        # The case is meant to pile mass at the edges: check that it does.
        edge = np.abs(shifted) > 0.99
        assert np.sum(mass[edge[1:] & edge[:-1]]) > 0.3


# ---------------------------------------------------------------------------- large |u|
LARGE_U = [10.0, 20.0, 50.0, -50.0, -10.0, 15.0]


def _np_log_one_minus_tanh_sq(u):
    """Closed form log(1 - tanh(u)^2) = 2 log 2 - 2|u| - 2 log1p(exp(-2|u|)) (float64)."""
    u = np.abs(np.asarray(u, np.float64))
    return 2.0 * math.log(2.0) - 2.0 * u - 2.0 * np.log1p(np.exp(-2.0 * u))


def test_naive_log_det_is_minus_inf_in_float32_at_large_u():
    # The premise of the stable form: tanh saturates to exactly 1 in float32.
    u = jnp.asarray(LARGE_U, jnp.float32)
    with np.errstate(divide="ignore"):
        naive = np.asarray(jnp.log(1.0 - jnp.tanh(u) ** 2))
    assert np.all(np.isneginf(naive))


@pytest.mark.parametrize("u", LARGE_U)
def test_tanh_log_det_jacobian_is_finite_and_exact_at_large_u(u):
    got = tanh_log_det_jacobian(jnp.asarray([[u]], jnp.float32))
    assert got.shape == (1,)
    got = float(got[0])
    assert math.isfinite(got)
    assert got == pytest.approx(float(_np_log_one_minus_tanh_sq(u)), rel=1e-4)


def test_tanh_log_det_jacobian_matches_naive_float64_at_moderate_u_and_sums_over_last_axis():
    u = np.array([[-3.0, -0.5, 0.0], [0.25, 1.0, 4.0]])
    expected = np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=-1)
    got = tanh_log_det_jacobian(jnp.asarray(u, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_log_prob_gradients_are_finite_and_correct_at_large_u():
    u = np.array(LARGE_U)
    mean = np.array([0.0, 1.0, 45.0, -48.0, 0.5, 14.0])
    log_std = np.array([0.0, 1.0, 0.5, 0.0, -0.5, 2.0])

    def total(u_, mean_, log_std_):
        return jnp.sum(squashed_gaussian_log_prob(u_[:, None], mean_[:, None], log_std_[:, None]))

    args = [jnp.asarray(x, jnp.float32) for x in (u, mean, log_std)]
    value = total(*args)
    assert np.isfinite(float(value))
    g_u, g_mean, g_log_std = jax.grad(total, argnums=(0, 1, 2))(*args)
    for g in (g_u, g_mean, g_log_std):
        assert np.all(np.isfinite(np.asarray(g)))

    # Independent closed forms: d/du = -(u - mu)/s^2 + 2 tanh(u) (since d/du log(1 - tanh^2 u) = -2 tanh u),
    # d/dmu = (u - mu)/s^2, d/dlog_s = (u - mu)^2/s^2 - 1.
    s2 = np.exp(2.0 * log_std)
    np.testing.assert_allclose(np.asarray(g_u), -(u - mean) / s2 + 2.0 * np.tanh(u), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_mean), (u - mean) / s2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(g_log_std), (u - mean) ** 2 / s2 - 1.0, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------- sampling
def test_sample_bounds_and_log_prob_consistent_with_the_same_draw():
    key = jax.random.PRNGKey(3)
    mean = jnp.asarray(np.linspace(-6.0, 6.0, 2 * 64).reshape(64, 2), jnp.float32)
    log_std = jnp.asarray(np.linspace(-3.0, 2.0, 2 * 64).reshape(64, 2), jnp.float32)
    action, log_prob = squashed_gaussian_sample(key, mean, log_std)
    assert action.shape == (64, 2) and log_prob.shape == (64,)
    assert np.all(np.abs(np.asarray(action)) <= 1.0)
    assert np.all(np.isfinite(np.asarray(log_prob)))

    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    np.testing.assert_allclose(np.asarray(action), np.tanh(np.asarray(u, np.float64)), rtol=1e-6, atol=1e-6)

    # log_prob recomputed from the same u, independently in float64 with the stable closed form.
    u64 = np.asarray(u, np.float64)
    m64, ls64 = np.asarray(mean, np.float64), np.asarray(log_std, np.float64)
    expected = np.sum(np.log(_np_normal_pdf(u64, m64, np.exp(ls64))) - _np_log_one_minus_tanh_sq(u64), axis=-1)
    np.testing.assert_allclose(np.asarray(log_prob), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(squashed_gaussian_log_prob(u, mean, log_std)),
                               rtol=1e-6, atol=1e-5)


def test_sample_is_reparameterised():
    key = jax.random.PRNGKey(11)
    mean = jnp.asarray([[0.2, -0.4], [1.0, 0.0], [-1.3, 0.6]], jnp.float32)
    log_std = jnp.asarray([[-0.5, 0.0], [0.3, -1.0], [0.0, 0.5]], jnp.float32)

    def mean_action(m, ls):
        return jnp.mean(squashed_gaussian_sample(key, m, ls)[0])

    g_mean, g_log_std = jax.grad(mean_action, argnums=(0, 1))(mean, log_std)
    eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
    u = np.asarray(mean, np.float64) + np.exp(np.asarray(log_std, np.float64)) * eps
    sech2 = 1.0 - np.tanh(u) ** 2
    assert np.all(np.abs(np.asarray(g_mean)) > 0)
    # d mean(a) / d mean_ij = (1 - tanh^2 u_ij) / n, d / d log_std_ij = (1 - tanh^2 u_ij) * std_ij * eps_ij / n
    np.testing.assert_allclose(np.asarray(g_mean), sech2 / u.size, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(g_log_std), sech2 * (u - np.asarray(mean)) / u.size, rtol=1e-4, atol=1e-6)


def test_mean_log_prob_approximates_minus_entropy():
    """E[log pi] = -(H[N(mu, s)] + E[log(1 - tanh^2 u)]), the latter by an independent numpy Monte Carlo."""
    n = 20_000
    mu = np.array([0.5, -1.0])
    log_std = np.array([-0.3, 0.4])
    key = jax.random.PRNGKey(5)
    _, log_prob = squashed_gaussian_sample(key, jnp.broadcast_to(jnp.asarray(mu, jnp.float32), (n, 2)),
                                           jnp.broadcast_to(jnp.asarray(log_std, jnp.float32), (n, 2)))
    gaussian_entropy = np.sum(0.5 * math.log(2.0 * math.pi * math.e) + log_std)
    rng = np.random.default_rng(0)
    u = mu + np.exp(log_std) * rng.standard_normal((200_000, 2))
    expected_log_det = np.mean(np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=-1))
    expected = -(gaussian_entropy + expected_log_det)
    lp = np.asarray(log_prob, np.float64)
    stderr = lp.std() / math.sqrt(n)
    assert abs(lp.mean() - expected) < 5.0 * stderr + 5e-3, (lp.mean(), expected, stderr)


def test_mode_is_tanh_of_mean():
    mean = np.array([[-30.0, -2.0, -0.1], [0.0, 0.7, 25.0]])
    got = squashed_gaussian_mode(jnp.asarray(mean, jnp.float32))
    assert got.shape == mean.shape
    np.testing.assert_allclose(np.asarray(got), np.tanh(mean), rtol=1e-6, atol=1e-7)
