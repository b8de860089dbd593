"""CrossQ's networks: Batch Renormalization (Ioffe 2017) and the critic and actor built with it, as in
the authors' code (docs/algorithms.md, "CrossQ (Bhatt et al., ICLR 2024)").

Each module takes `train` as an attribute (two instances share one parameter and statistics tree):
`train=True` normalises with the minibatch's statistics (renormalised towards the running ones after
the warm-up) and updates the running statistics, which must then be applied with
`mutable=["batch_stats"]`; `train=False` normalises with the running statistics and changes nothing:
acting, evaluation and the critic inside the actor's loss.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from softac.layers import batch_renormalise
from softac.networks import LOG_STD_MAX, LOG_STD_MIN, dense

# The authors' (and Ioffe's) bounds of the renormalisation correction: r in [1/3, 3], d in [-5, 5].
R_MAX = 3.0
D_MAX = 5.0


class BatchRenorm(nn.Module):
    """Batch Renormalization over the leading axes, features on the last.

    Train mode, with batch mean mu_B and sigma_B = sqrt(var_B + eps), running mu, sigma = sqrt(var + eps):
        xhat = (x - mu_B) / sigma_B * r + d,   r = clip(sg(sigma_B / sigma), 1/R_MAX, R_MAX),
                                               d = clip(sg((mu_B - mu) / sigma), -D_MAX, D_MAX)
    during the first `warmup_steps` training passes r = 1, d = 0 (plain batch normalisation); then
    mu <- m mu + (1 - m) mu_B, var <- m var + (1 - m) var_B. Eval mode: xhat = (x - mu) / sigma.
    Output gamma * xhat + beta. sg is stop-gradient: r and d are constants of the backward pass. Train mode is
    `softac.layers.batch_renormalise` (its reductions as matrix products: 1.7x faster here, docs/speed.md).
    """

    train: bool
    momentum: float = 0.99
    warmup_steps: int = 100_000
    epsilon: float = 1e-3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        steps = self.variable("batch_stats", "steps", jnp.zeros, (), jnp.int32)
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)

        if not self.train:
            xhat = (x - mean.value) / jnp.sqrt(var.value + self.epsilon)
            return xhat * scale + bias

        warmed_up = jnp.logical_and(steps.value >= self.warmup_steps, not self.is_initializing())
        y, batch_mean, batch_var = batch_renormalise(x, scale, bias, mean.value, var.value, warmed_up,
                                                     self.epsilon, R_MAX, D_MAX)
        if not self.is_initializing():
            mean.value = self.momentum * mean.value + (1.0 - self.momentum) * jax.lax.stop_gradient(batch_mean)
            var.value = self.momentum * var.value + (1.0 - self.momentum) * jax.lax.stop_gradient(batch_var)
            steps.value = steps.value + 1
        return y


class NormalisedMLP(nn.Module):
    """BatchRenorm of the input, then per hidden layer Dense -> ReLU -> BatchRenorm, then Dense(out_size)
    (the authors' layout for both networks)."""

    hidden_sizes: Sequence[int]
    out_size: int
    train: bool
    momentum: float = 0.99
    warmup_steps: int = 100_000
    initialization: str = "flax"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = BatchRenorm(self.train, self.momentum, self.warmup_steps)(x)
        for width in self.hidden_sizes:
            x = nn.relu(dense(width, x.shape[-1], self.initialization)(x))
            x = BatchRenorm(self.train, self.momentum, self.warmup_steps)(x)
        return dense(self.out_size, x.shape[-1], self.initialization)(x)


class NormalisedCritic(nn.Module):
    """Q(s, a) -> [...] through a NormalisedMLP of the concatenated observation and action."""

    hidden_sizes: Sequence[int]
    train: bool
    momentum: float = 0.99
    warmup_steps: int = 100_000
    initialization: str = "flax"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return NormalisedMLP(self.hidden_sizes, 1, self.train, self.momentum, self.warmup_steps, self.initialization)(x)[..., 0]


class NormalisedSquashedGaussianActor(nn.Module):
    """pi(.|s) as `softac.networks.SquashedGaussianActor`, through a NormalisedMLP: (mean, log_std)."""

    hidden_sizes: Sequence[int]
    action_dim: int
    train: bool
    momentum: float = 0.99
    warmup_steps: int = 100_000
    initialization: str = "flax"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = NormalisedMLP(self.hidden_sizes, 2 * self.action_dim, self.train, self.momentum,
                            self.warmup_steps, self.initialization)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
