"""The losses of TQC (Kuznetsov et al., ICML 2020) as pure functions of arrays, one per equation of
docs/algorithms.md, "TQC (Kuznetsov et al., ICML 2020)".

Shapes: B is the batch size, N the number of critics, M the atoms per critic, d the atoms dropped per
critic and K = N (M - d) the atoms kept in the target. Critic outputs are atoms [N, B, M]. Losses
return (scalar loss, info dict).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def truncated_target_atoms(next_target_atoms: jax.Array, top_quantiles_to_drop: int) -> jax.Array:
    """The pooled atoms of the target critics at (s', a') with the d N largest dropped: the K = N (M - d)
    smallest z_(1) <= ... <= z_(K) of the N M atoms theta^m_{psibar_n}(s', a').

    next_target_atoms: [N, B, M]; top_quantiles_to_drop: d, atoms dropped per critic. Returns [B, K], the kept
    atoms in their pooled order (critic by critic), not sorted: the loss averages over them, so their order is
    immaterial, and finding the d N largest with `lax.top_k` and gathering the others takes about a tenth of the
    time of sorting the pool on a CPU (docs/speed.md, "Every algorithm's update").
    """
    n_critics, batch_size, n_quantiles = next_target_atoms.shape
    pooled = jnp.moveaxis(next_target_atoms, 0, 1).reshape(batch_size, n_critics * n_quantiles)
    n_dropped = n_critics * top_quantiles_to_drop
    if n_dropped == 0:
        return pooled
    _, dropped = jax.lax.top_k(pooled, n_dropped)
    dropped = jnp.sort(dropped, axis=-1)  # the positions s_0 < ... < s_{dN-1} of the dropped atoms in the pool
    # s_i has s_i - i kept atoms before it, so the j-th kept atom sits at j + #{i : s_i - i <= j}.
    kept_before = dropped - jnp.arange(n_dropped)
    j = jnp.arange(n_critics * n_quantiles - n_dropped)
    source = j + jnp.sum(kept_before[:, None, :] <= j[None, :, None], axis=-1)
    return jnp.take_along_axis(pooled, source, axis=1)


def target_atoms(reward: jax.Array, terminated: jax.Array, truncated_atoms: jax.Array, next_log_prob: jax.Array,
                 alpha: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """The atoms of the target distribution, y_i = r + gamma (1 - terminated) (z_(i) - alpha log pi(a'|s')).

    reward, terminated, next_log_prob: [B] (log pi of a' ~ pi(.|s')); truncated_atoms: [B, K] from
    `truncated_target_atoms`; gamma a scalar, or [B] per transition (gamma^k for an n-step target). Only
    `terminated` cuts the bootstrap (a time limit does not). Returns [B, K].
    """
    gamma = jnp.asarray(gamma)[..., None]
    next_soft_atoms = truncated_atoms - alpha * next_log_prob[:, None]
    return reward[:, None] + gamma * (1.0 - terminated[:, None]) * next_soft_atoms


def quantile_midpoints(n_quantiles: int) -> jax.Array:
    """tau_m = (2m + 1) / (2M) for m = 0, ..., M-1: the quantile levels the M atoms of a critic estimate. [M]"""
    return (2.0 * jnp.arange(n_quantiles, dtype=jnp.float32) + 1.0) / (2.0 * n_quantiles)


def _quantile_huber_sums(atoms: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sum_{n, b, m, i} rho_{tau_m}(u) and, for each atom theta^m_n(b), sum_i |tau_m - 1{u < 0}| clip(u, -1, 1),
    with u = y_i(b) - theta^m_n(b): the loss's sum and minus its gradient's sum.

    A scan over the K target atoms keeps every intermediate at the atoms' shape [N, B, M]. The broadcast form
    builds [N, B, M, K] arrays (2.4 MB each at TQC's defaults) that XLA's CPU backend writes to memory once per
    operation of the loss and of its automatic gradient, which took 8 times as long (docs/speed.md, "TQC's
    quantile Huber loss"). Two target atoms per iteration (unroll=2) saves another fifth.
    """
    taus = quantile_midpoints(atoms.shape[-1]).astype(atoms.dtype)

    def add_target_atom(sums, y):  # y: [B], the i-th target atom of every transition
        loss_sum, grad_sum = sums
        u = y[None, :, None] - atoms
        weight = jnp.where(u < 0.0, 1.0 - taus, taus)
        huber = jnp.where(jnp.abs(u) > 1.0, jnp.abs(u) - 0.5, 0.5 * u * u)
        return (loss_sum + weight * huber, grad_sum + weight * jnp.clip(u, -1.0, 1.0)), None

    zeros = jnp.zeros_like(atoms)
    (loss_sum, grad_sum), _ = jax.lax.scan(add_target_atom, (zeros, zeros), jnp.swapaxes(target, 0, 1),
                                           unroll=2)
    return jnp.sum(loss_sum), grad_sum


@jax.custom_vjp
def _mean_quantile_huber(atoms: jax.Array, target: jax.Array) -> jax.Array:
    return _mean_quantile_huber_forward(atoms, target)[0]


def _mean_quantile_huber_forward(atoms, target):
    count = atoms.size * target.shape[-1]
    loss_sum, grad_sum = _quantile_huber_sums(atoms, target)
    # d rho_tau(u) / d theta = -|tau - 1{u < 0}| L'(u) with L'(u) = clip(u, -1, 1); the target is a constant.
    return loss_sum / count, -grad_sum / count


def _mean_quantile_huber_backward(gradient, cotangent):
    return cotangent * gradient, None


_mean_quantile_huber.defvjp(_mean_quantile_huber_forward, _mean_quantile_huber_backward)


def quantile_huber_loss(atoms: jax.Array, target: jax.Array) -> tuple[jax.Array, dict]:
    """J_Z = mean over b, n, m, i of rho_{tau_m}(y_i(b) - theta^m_n(s_b, a_b)), the quantile Huber loss (kappa = 1):

        rho_tau(u) = |tau - 1{u < 0}| L(u),   L(u) = u^2 / 2 if |u| <= 1, else |u| - 1/2.

    atoms: [N, B, M] the critics at the stored (s, a); target: [B, K] the target atoms (a constant here: its
    gradient is zero). Normalised as sb3-contrib's TQC: the mean over the batch, the critics, the atoms and the
    target atoms (the paper's per-critic loss, 1/(K M) times its sum over m and i, averaged over the N critics).
    The gradient with respect to the atoms, -1/(N B M K) sum_i |tau_m - 1{u < 0}| clip(u, -1, 1), is computed
    with the loss in one pass over the target atoms (`_quantile_huber_sums`).
    """
    loss = _mean_quantile_huber(atoms, jax.lax.stop_gradient(target))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(atoms)}


def actor_loss(atoms: jax.Array, log_prob: jax.Array, alpha: jax.Array) -> tuple[jax.Array, dict]:
    """J_pi = E_s[ alpha log pi(a|s) - 1/(N M) sum_{n, m} theta^m_n(s, a) ], a ~ pi(.|s) reparameterised: the
    mean over all atoms of all critics, none dropped.

    atoms: [N, B, M] the critics at the sampled actions, log_prob: [B]. alpha is a constant here.
    """
    # the mean over the M atoms as a product with a ones vector made from the atoms (batched with them under
    # vmap): XLA's CPU backend fused a plain mean into the last layer's product and ran it ~3% of the update
    # slower (docs/speed.md, "Sums as products")
    ones = 1.0 + 0.0 * atoms[0, 0, :]
    q = jnp.mean(atoms @ (ones / atoms.shape[-1]), axis=0)
    loss = jnp.mean(jax.lax.stop_gradient(alpha) * log_prob - q)
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}
