"""SimbaV2's hyperspherical networks (Lee et al., 2025): every hidden vector and every weight vector lives on
the unit hypersphere. Equations: docs/algorithms.md, "SimbaV2 (Lee et al., 2025)".

- `HyperDense`: x @ W, no bias; W [in, out] is orthogonally initialised and projected back onto the unit
  sphere along its input axis after every optimiser step (`project_weights`), so each output unit's weight
  vector has norm 1.
- `Scaler`: a learnable elementwise gain s, stored as s / (init / scale) so that Adam moves it at the
  rate of a parameter of size `scale` (the authors' scaler reparameterisation).
- `HyperEmbedder`: the shifted, L2-normalised input, x~ = l2([x, c_shift]), then h = l2(s * (x~ W)).
- `HyperLERPBlock`: h <- l2(h + alpha * (l2(relu(s * (h W1)) + eps) W2) - h)), alpha a learnable Scaler.
- `SimbaV2Actor`: observation normalisation, embedder, blocks, and the linear mean and log-std heads
  (log std = min + (max - min)(1 + tanh(.)) / 2). `SimbaV2Critic`: (s, a) -> logits over `num_bins` atoms.
"""

from __future__ import annotations

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from softac import layers

#: The floor of a norm in an L2 normalisation and the offset after the block's ReLU (the authors' 1e-8).
L2_EPS = 1e-8
#: Width of a block's inner layer, in multiples of the block width (the authors' 4).
EXPANSION = 4
#: The actor's log-std range (the authors' [-10, 2]).
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
#: Observation normalisation: (obs - mean) / sqrt(var + OBS_EPS), as the authors' (and Gymnasium's) wrapper.
OBS_EPS = 1e-8


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """x / max(||x||_2, L2_EPS) along `axis`: the projection onto the unit hypersphere. Along the last axis (the
    networks' features) it is `softac.layers.l2_normalize`, its reductions as matrix products."""
    if axis in (-1, x.ndim - 1):
        return layers.l2_normalize(x, L2_EPS)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), L2_EPS)


def normalize_observation(obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
    """(obs - mean) / sqrt(var + OBS_EPS) with the running statistics; obs [..., obs_dim], mean, var [obs_dim]."""
    return (obs - mean) / jnp.sqrt(var + OBS_EPS)


def shift_and_normalize(x: jax.Array, shift: float) -> jax.Array:
    """x~ = l2([x, c_shift]): the constant appended as one more feature keeps the norm of x (lost by the
    projection) in the direction of x~. x [..., d] -> [..., d + 1]."""
    constant = jnp.ones_like(x[..., :1]) * shift  # (not jnp.full of x.shape: the ONNX export has a symbolic batch)
    return l2_normalize(jnp.concatenate([x, constant], axis=-1))


class HyperDense(nn.Module):
    """x @ W without bias; W [in, features], orthogonal at init, its columns kept on the unit sphere."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.orthogonal(scale=1.0, column_axis=0),
                            (x.shape[-1], self.features), jnp.float32)
        return layers.linear(x, kernel)


class Scaler(nn.Module):
    """s * x elementwise, s = param * (init / scale), param initialised to `scale` (so s starts at `init`)."""

    dim: int
    init: float = 1.0
    scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        param = self.param("scaler", nn.initializers.constant(self.scale), (self.dim,), jnp.float32)
        return layers.feature_gain(param * (self.init / self.scale), x)


def scaler_gain(params: dict, init: float, scale: float):
    """The effective gain s = param * (init / scale) of a `Scaler`'s parameters (for export)."""
    return params["scaler"] * (init / scale)


class HyperEmbedder(nn.Module):
    """h = l2(s * (l2([x, c_shift]) @ W)): x [..., d] -> [..., hidden_dim] on the unit sphere."""

    hidden_dim: int
    shift: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gain = math.sqrt(2.0 / self.hidden_dim)
        x = HyperDense(self.hidden_dim)(shift_and_normalize(x, self.shift))
        return l2_normalize(Scaler(self.hidden_dim, gain, gain)(x))


class HyperLERPBlock(nn.Module):
    """h <- l2(h + alpha * (l2(relu(s * (h @ W1)) + eps) @ W2) - h)): a residual step interpolating (LERP)
    between h and the block's output on the sphere, then normalised back onto it. alpha starts at
    1 / (num_blocks + 1), its parameter at 1 / sqrt(hidden_dim); s starts at sqrt(2 / hidden_dim) / 2."""

    hidden_dim: int
    num_blocks: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        gain = math.sqrt(2.0 / self.hidden_dim) / math.sqrt(EXPANSION)
        inner = HyperDense(self.hidden_dim * EXPANSION)(h)
        inner = nn.relu(Scaler(self.hidden_dim * EXPANSION, gain, gain)(inner)) + L2_EPS
        update = l2_normalize(HyperDense(self.hidden_dim)(inner))
        alpha = Scaler(self.hidden_dim, 1.0 / (self.num_blocks + 1), 1.0 / math.sqrt(self.hidden_dim))
        return l2_normalize(h + alpha(update - h))


class HyperLinearHead(nn.Module):
    """y = s * (h @ W1) @ W2 + b (no nonlinearity; s starts at 1, b at 0): a prediction from the sphere."""

    hidden_dim: int
    out_dim: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        h = Scaler(self.hidden_dim, 1.0, 1.0)(HyperDense(self.hidden_dim)(h))
        return HyperDense(self.out_dim)(h) + self.param("bias", nn.initializers.zeros, (self.out_dim,), jnp.float32)


class HyperEncoder(nn.Module):
    """The embedder and `num_blocks` LERP blocks: x [..., d] -> h [..., hidden_dim], ||h|| = 1."""

    hidden_dim: int
    num_blocks: int
    shift: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = HyperEmbedder(self.hidden_dim, self.shift)(x)
        for _ in range(self.num_blocks):
            h = HyperLERPBlock(self.hidden_dim, self.num_blocks)(h)
        return h


class SimbaV2Actor(nn.Module):
    """pi(.|s): (mean, log_std) [..., action_dim] of the squashed Gaussian from the observation.

    The observation is normalised first with the running statistics of the `obs_stats` collection (mean,
    var [obs_dim]; the agent keeps them in its state and passes them with the parameters), unless
    `normalize_observations` is off. log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN)(1 + tanh(y)) / 2.
    """

    num_blocks: int
    hidden_dim: int
    action_dim: int
    shift: float
    normalize_observations: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean_stat = self.variable("obs_stats", "mean", jnp.zeros, (obs.shape[-1],), jnp.float32)
        var_stat = self.variable("obs_stats", "var", jnp.ones, (obs.shape[-1],), jnp.float32)
        x = normalize_observation(obs, mean_stat.value, var_stat.value) if self.normalize_observations else obs
        h = HyperEncoder(self.hidden_dim, self.num_blocks, self.shift)(x)
        mean = HyperLinearHead(self.hidden_dim, self.action_dim)(h)
        raw_log_std = HyperLinearHead(self.hidden_dim, self.action_dim)(h)
        return mean, squash_log_std(raw_log_std)


def squash_log_std(y: jax.Array) -> jax.Array:
    """log std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN)(1 + tanh(y)) / 2, a smooth map onto the range."""
    return LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * 0.5 * (1.0 + jnp.tanh(y))


class SimbaV2Critic(nn.Module):
    """Z(s, a): logits [..., num_bins] of the return distribution over the fixed support, from the
    concatenated (normalised) observation and action."""

    num_blocks: int
    hidden_dim: int
    num_bins: int
    shift: float

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        h = HyperEncoder(self.hidden_dim, self.num_blocks, self.shift)(jnp.concatenate([obs, action], axis=-1))
        return HyperLinearHead(self.hidden_dim, self.num_bins)(h)


_HYPER_DENSE = re.compile(r"HyperDense_\d+")


def project_weights(params):
    """Every HyperDense kernel W [..., in, out] projected onto the unit sphere along its input axis (each output
    unit's weight vector normalised: W[:, j] / ||W[:, j]||), the other parameters unchanged. A leading critic
    axis [N, in, out] is kept. Applied after initialisation and after every optimiser step."""

    def project(path, leaf):
        names = [getattr(entry, "key", "") for entry in path]
        if names and names[-1] == "kernel" and any(_HYPER_DENSE.fullmatch(str(n)) for n in names[:-1]):
            return l2_normalize(leaf, axis=-2)
        return leaf

    return jax.tree_util.tree_map_with_path(project, params)
