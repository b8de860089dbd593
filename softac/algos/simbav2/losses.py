"""SimbaV2's losses as pure functions of arrays: the distributional (categorical) critic, and the temperature
in the authors' form. The actor's loss is SAC v2's on the critics' expected values
(`softac.algos.sac.losses.actor_loss`). Equations: docs/algorithms.md, "SimbaV2 (Lee et al., 2025)".

Shapes: B the batch size, K the number of atoms, N the number of critics (2, or 1 without clipped double Q).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def support(num_bins: int, v_min: float, v_max: float) -> jax.Array:
    """The fixed atoms z_k = v_min + k (v_max - v_min) / (K - 1), k = 0 .. K-1: [K]."""
    return jnp.linspace(v_min, v_max, num_bins, dtype=jnp.float32)


def _shifted_exponentials(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(l - max l, e = exp(l - max l), S = sum_k e_k [..., 1]) over the last axis, the max held constant (as
    `jax.nn.softmax` holds it; it cancels in softmax = e / S). The sum is a product with a ones vector, so
    that neither it nor its gradient is a reduction: XLA's CPU backend runs a product-then-sum over an axis of
    101 atoms, and the sums of softmax's own gradient, far slower than a matrix-vector product (docs/speed.md,
    "Sums as products")."""
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    exponentials = jnp.exp(shifted)
    return shifted, exponentials, exponentials @ jnp.ones((logits.shape[-1], 1), logits.dtype)


def expected_value(logits: jax.Array, atoms: jax.Array) -> jax.Array:
    """Q = sum_k softmax(logits)_k z_k = (e . z) / (e . 1): logits [..., K] -> [...]."""
    _, exponentials, total = _shifted_exponentials(logits)
    return (exponentials @ atoms) / total[..., 0]


def min_q_distribution(target_logits: jax.Array, atoms: jax.Array) -> jax.Array:
    """The probabilities [B, K] of, per transition, the target critic whose expected value is lowest (clipped
    double Q on distributions, as the authors); target_logits [N, B, K]."""
    lowest = jnp.argmin(expected_value(target_logits, atoms), axis=0)  # [B]
    probs = jax.nn.softmax(target_logits, axis=-1)
    return jnp.take_along_axis(probs, lowest[None, :, None], axis=0)[0]


def categorical_projection(next_probs: jax.Array, reward: jax.Array, terminated: jax.Array,
                           next_alpha_log_prob: jax.Array, discount, atoms: jax.Array) -> jax.Array:
    """The target distribution: atom z_j of the next state's distribution (probability p_j) moves to

        Tz_j = clip(r + discount (1 - terminated) (z_j - alpha log pi(a'|s')), v_min, v_max)

    and its mass is split between the two neighbouring atoms in proportion to closeness (C51's projection):
    with b_j = (Tz_j - v_min) / dz, atom k receives sum_j p_j max(0, 1 - |b_j - k|) (all of p_j when b_j is
    an atom). next_probs [B, K]; reward, terminated, next_alpha_log_prob [B]; discount a scalar or [B];
    atoms [K] evenly spaced. Returns [B, K], each row summing to 1."""
    num_bins = atoms.shape[0]
    v_min, v_max = atoms[0], atoms[-1]
    discount = jnp.broadcast_to(jnp.asarray(discount, jnp.float32), reward.shape)
    bootstrap = (discount * (1.0 - terminated))[:, None]
    shifted = reward[:, None] + bootstrap * (atoms[None, :] - next_alpha_log_prob[:, None])  # Tz_j [B, K]
    position = (jnp.clip(shifted, v_min, v_max) - v_min) / ((v_max - v_min) / (num_bins - 1))  # b_j [B, K]
    # atom j's mass goes to floor(b_j) with weight 1 - frac and to floor(b_j) + 1 with weight frac, which is
    # max(0, 1 - |b_j - k|) for every k (a scatter-add of 2 K entries per row instead of a [B, K, K] product)
    lower = jnp.clip(jnp.floor(position), 0, num_bins - 1)
    upper_weight = position - lower
    lower_index = lower.astype(jnp.int32)
    upper_index = jnp.minimum(lower_index + 1, num_bins - 1)  # weight 0 where b_j = K - 1
    rows = jnp.arange(reward.shape[0])[:, None]
    target = jnp.zeros_like(next_probs).at[rows, lower_index].add(next_probs * (1.0 - upper_weight))
    return target.at[rows, upper_index].add(next_probs * upper_weight)


def categorical_critic_loss(logits: jax.Array, target_probs: jax.Array, atoms: jax.Array) -> tuple[jax.Array, dict]:
    """J_Z = sum_i E_B[ -sum_k m_k log softmax(logits_i)_k ]: the cross-entropy of every critic's distribution
    against the projected target m (a constant). logits [N, B, K], target_probs [B, K]."""
    target_probs = jax.lax.stop_gradient(target_probs)
    # -sum_k m_k log softmax(l)_k = log S sum_k m_k - sum_k m_k (l_k - max l), every sum over k a product
    shifted, _, total = _shifted_exponentials(logits)
    target_mass = target_probs @ jnp.ones((target_probs.shape[-1],), target_probs.dtype)  # [B], 1 up to rounding
    cross_entropy = jnp.log(total[..., 0]) * target_mass - jnp.einsum("nbk,bk->nb", shifted, target_probs)
    loss = jnp.sum(jnp.mean(cross_entropy, axis=-1))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(expected_value(logits, atoms))}


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> tuple[jax.Array, dict]:
    """J(alpha) = alpha (H - Hbar) with H = -E[log pi(a|s)] (a constant), alpha = exp(log alpha): the authors'
    form, whose gradient in log alpha is alpha (H - Hbar). log_prob [B]."""
    entropy_gap = jax.lax.stop_gradient(-jnp.mean(log_prob) - target_entropy)
    loss = jnp.exp(log_alpha) * entropy_gap
    return loss, {"alpha_loss": loss}
