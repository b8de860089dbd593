"""Tests for softac.algos.sac.losses: the SAC v2 losses on hand-made batches with hand-written expected numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from softac.algos.sac.losses import actor_loss, critic_loss, polyak_update, soft_q_target, temperature_loss


def f32(x):
    return jnp.asarray(x, jnp.float32)


# ----------------------------------------------------------------------------- soft_q_target
def test_soft_q_target_hand_batch():
    # Transition 0: ordinary, min from critic 1.      Transition 1: terminated, no bootstrap.
    # Transition 2: ordinary, min from critic 1.      Transition 3: truncated by a time limit, stored
    #                                                  with terminated = 0, so it bootstraps; min from critic 2.
    reward = f32([1.0, -0.5, 2.0, 0.25])
    terminated = f32([0.0, 1.0, 0.0, 0.0])
    next_target_q = f32([[1.0, 10.0, 0.5, -1.0],   # critic 1
                         [2.0, 4.0, 1.5, -3.0]])   # critic 2
    next_log_prob = f32([-1.0, 0.4, 2.0, -0.6])
    alpha, gamma = 0.5, 0.9
    # min_i Qbar_i:        [1.0, 4.0, 0.5, -3.0]
    # - alpha * log pi:    [0.5, -0.2, -1.0, 0.3]
    # soft next value:     [1.5, 3.8, -0.5, -2.7]
    # y0 = 1.0  + 0.9 * 1.5    = 2.35
    # y1 = -0.5 (terminated: the 3.8 is not used)
    # y2 = 2.0  + 0.9 * (-0.5) = 1.55
    # y3 = 0.25 + 0.9 * (-2.7) = 0.25 - 2.43 = -2.18
    expected = [2.35, -0.5, 1.55, -2.18]
    y = soft_q_target(reward, terminated, next_target_q, next_log_prob, f32(alpha), gamma)
    assert y.shape == (4,)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-6, atol=1e-6)


def test_soft_q_target_uses_the_min_not_the_mean_or_a_fixed_critic():
    # Same batch with the critics swapped gives the same targets (min is symmetric) ...
    args = (f32([0.0, 0.0]), f32([0.0, 0.0]))
    q = f32([[1.0, 5.0], [3.0, 2.0]])
    y = soft_q_target(*args, q, f32([0.0, 0.0]), f32(1.0), 0.5)
    y_swapped = soft_q_target(*args, q[::-1], f32([0.0, 0.0]), f32(1.0), 0.5)
    # ... = 0.5 * [min(1, 3), min(5, 2)] = [0.5, 1.0]
    np.testing.assert_allclose(np.asarray(y), [0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(y_swapped), [0.5, 1.0], rtol=1e-6)


# ------------------------------------------------------------------------------- critic_loss
Q = [[1.0, 2.0, 3.0],   # critic 1
     [0.0, 2.5, 5.0]]   # critic 2
TARGET = [0.5, 2.0, 4.0]


def test_critic_loss_hand_numbers():
    # errors critic 1: [0.5, 0.0, -1.0] -> squared [0.25, 0.0, 1.0]
    # errors critic 2: [-0.5, 0.5, 1.0] -> squared [0.25, 0.25, 1.0]
    # sum over critics per transition: [0.5, 0.25, 2.0]; mean over batch = 2.75 / 3; times 1/2:
    expected = 0.5 * 2.75 / 3.0  # 0.458333...
    loss, info = critic_loss(f32(Q), f32(TARGET))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(info["critic_loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(info["q_mean"]) == pytest.approx(13.5 / 6.0, rel=1e-6)


def test_critic_loss_gradients():
    # No gradient into the target (stop_gradient): y is a constant of the critic step.
    g_target = jax.grad(lambda t: critic_loss(f32(Q), t)[0])(f32(TARGET))
    np.testing.assert_array_equal(np.asarray(g_target), np.zeros(3))
    # d loss / d Q_ij = (Q_ij - y_j) / B
    g_q = jax.grad(lambda q: critic_loss(q, f32(TARGET))[0])(f32(Q))
    expected = (np.array(Q) - np.array(TARGET)[None]) / 3.0
    np.testing.assert_allclose(np.asarray(g_q), expected, rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------------------- actor_loss
QA = [[1.0, -2.0, 0.5],   # critic 1
      [0.5, -1.0, 3.0]]   # critic 2
LOG_PROB = [-1.0, 0.5, 2.0]
ALPHA = 0.2


def test_actor_loss_hand_numbers():
    # min_i Q_i = [0.5, -2.0, 0.5]; alpha * log pi = [-0.2, 0.1, 0.4]
    # alpha * log pi - min Q = [-0.7, 2.1, -0.1]; mean = 1.3 / 3
    loss, info = actor_loss(f32(QA), f32(LOG_PROB), f32(ALPHA))
    assert float(loss) == pytest.approx(1.3 / 3.0, rel=1e-6)
    assert float(info["actor_loss"]) == pytest.approx(1.3 / 3.0, rel=1e-6)
    assert float(info["entropy"]) == pytest.approx(-(-1.0 + 0.5 + 2.0) / 3.0, rel=1e-6)  # -0.5


def test_actor_loss_gradients():
    g_alpha = jax.grad(lambda a: actor_loss(f32(QA), f32(LOG_PROB), a)[0])(f32(ALPHA))
    assert float(g_alpha) == 0.0  # alpha is a constant of the actor step
    g_log_prob = jax.grad(lambda lp: actor_loss(f32(QA), lp, f32(ALPHA))[0])(f32(LOG_PROB))
    np.testing.assert_allclose(np.asarray(g_log_prob), [ALPHA / 3.0] * 3, rtol=1e-6)
    # The gradient reaches only the minimising critic of each transition: -1/B there, 0 elsewhere.
    g_q = jax.grad(lambda q: actor_loss(q, f32(LOG_PROB), f32(ALPHA))[0])(f32(QA))
    expected = np.array([[0.0, -1.0, -1.0], [-1.0, 0.0, 0.0]]) / 3.0
    np.testing.assert_allclose(np.asarray(g_q), expected, rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------------- temperature_loss
TARGET_ENTROPY = -1.0
LOW_ENTROPY_LOG_PROB = [2.0, 1.0]     # entropy -1.5 < target -1: log pi + Hbar = [1, 0]
HIGH_ENTROPY_LOG_PROB = [-3.0, -1.0]  # entropy  2.0 > target -1: log pi + Hbar = [-4, -2]


def test_temperature_loss_value():
    # -mean(log_alpha * (log pi + Hbar)) = -0.3 * mean([1, 0]) = -0.15
    loss, info = temperature_loss(f32(0.3), f32(LOW_ENTROPY_LOG_PROB), TARGET_ENTROPY)
    assert float(loss) == pytest.approx(-0.15, rel=1e-6)
    assert float(info["alpha_loss"]) == pytest.approx(-0.15, rel=1e-6)


@pytest.mark.parametrize("log_prob, expected_grad", [(LOW_ENTROPY_LOG_PROB, -0.5), (HIGH_ENTROPY_LOG_PROB, 3.0)])
def test_temperature_loss_gradient_sign(log_prob, expected_grad):
    # d loss / d log_alpha = -mean(log pi + Hbar): < 0 when entropy is below target (descent raises alpha),
    # > 0 when above.
    grad = jax.grad(lambda la: temperature_loss(la, f32(log_prob), TARGET_ENTROPY)[0])(f32(0.0))
    assert float(grad) == pytest.approx(expected_grad, rel=1e-6)
    # log_prob is a constant of the temperature step.
    g_lp = jax.grad(lambda lp: temperature_loss(f32(0.7), lp, TARGET_ENTROPY)[0])(f32(log_prob))
    np.testing.assert_array_equal(np.asarray(g_lp), np.zeros(2))


@pytest.mark.parametrize("log_prob, alpha_rises", [(LOW_ENTROPY_LOG_PROB, True), (HIGH_ENTROPY_LOG_PROB, False)])
def test_one_adam_step_moves_alpha_towards_the_target_entropy(log_prob, alpha_rises):
    opt = optax.adam(0.1)
    log_alpha = f32(0.0)
    opt_state = opt.init(log_alpha)
    grad = jax.grad(lambda la: temperature_loss(la, f32(log_prob), TARGET_ENTROPY)[0])(log_alpha)
    updates, _ = opt.update(grad, opt_state)
    new_alpha = float(jnp.exp(optax.apply_updates(log_alpha, updates)))
    if alpha_rises:
        assert new_alpha > 1.0
    else:
        assert new_alpha < 1.0
    assert new_alpha == pytest.approx(np.exp(0.1 if alpha_rises else -0.1), rel=1e-4)  # adam's first step is lr


# ------------------------------------------------------------------------------ polyak_update
def _tree(values):
    w, b, c = values
    return {"layer": {"w": f32(w), "b": f32(b)}, "scale": f32(c)}


def test_polyak_update_leaf_by_leaf():
    target = _tree(([[1.0, 2.0], [3.0, 4.0]], [0.0, -1.0], 10.0))
    online = _tree(([[3.0, -2.0], [3.0, 0.0]], [1.0, 1.0], 0.0))
    out = polyak_update(target, online, 0.1)
    # 0.1 * online + 0.9 * target
    np.testing.assert_allclose(np.asarray(out["layer"]["w"]), [[1.2, 1.6], [3.0, 3.6]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out["layer"]["b"]), [0.1, -0.8], rtol=1e-6)
    assert float(out["scale"]) == pytest.approx(9.0, rel=1e-6)
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(target)


def test_polyak_update_tau_one_copies_online():
    target = _tree(([[1.0, 2.0], [3.0, 4.0]], [0.0, -1.0], 10.0))
    online = _tree(([[3.0, -2.0], [3.0, 0.0]], [1.0, 1.0], 0.0))
    out = polyak_update(target, online, 1.0)
    for got, want in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(online)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
