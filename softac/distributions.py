"""The squashed-Gaussian policy distribution (docs/algorithms.md, "Squashed Gaussian policy").

u ~ N(mu, sigma), a = tanh(u) in (-1, 1)^|A|, and by the change of variables

    log pi(a|s) = sum_i [ log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2) ]

with log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), which stays finite for any |u|
(the naive log(1 - tanh(u)^2) is log(0) = -inf once tanh(u) rounds to 1, near |u| > 9 in float32).

All functions take arrays whose last axis is the action dimension and reduce over it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(u; mean, exp(log_std)) summed over the last axis. Shapes [..., A] -> [...]."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - _HALF_LOG_2PI, axis=-1)


def tanh_log_det_jacobian(u: jax.Array) -> jax.Array:
    """sum_i log(1 - tanh(u_i)^2) in the stable form 2 (log 2 - u - softplus(-2u)). [..., A] -> [...]."""
    return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def squashed_gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log pi(tanh(u)) of the squashed Gaussian, given the pre-squash sample u. [..., A] -> [...]."""
    return gaussian_log_prob(u, mean, log_std) - tanh_log_det_jacobian(u)


def squashed_gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps), eps ~ N(0, I), and its log-probability.

    Gradients flow to mean and log_std through the sample (the reparameterisation trick of the
    SAC policy loss). Returns (action [..., A], log_prob [...]).
    """
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), squashed_gaussian_log_prob(u, mean, log_std)


def squashed_gaussian_mode(mean: jax.Array) -> jax.Array:
    """The deterministic action tanh(mean) used for evaluation. [..., A] -> [..., A]."""
    return jnp.tanh(mean)
