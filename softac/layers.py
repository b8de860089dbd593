"""Layer normalisation, batch renormalisation, L2 normalisation, a per-feature gain and dropout, with the same
maths as `flax.linen.LayerNorm`, Ioffe's Batch Renormalization, x / max(||x||, eps), x * s and
`flax.linen.Dropout` (and flax's parameter names), written for the speed of XLA on a CPU.

Why not flax's own (measured in DroQ's update, HalfCheetah-v5 shapes, docs/speed.md "DroQ's layers"):
- XLA's CPU backend runs reductions over an axis far slower than matrix products of the same size, and the
  gradient of LayerNorm's scale and bias is a reduction over the batch. `layer_norm` computes every
  reduction of its forward and backward pass as a product with a vector of ones (a custom VJP, the usual
  LayerNorm gradient written out).
- Batch renormalisation's statistics and their gradients are reductions over the batch, as is the gradient of
  its scale and bias: `batch_renormalise` computes them as products with a ones array (a custom VJP, the
  usual batch-normalisation gradient with the renormalisation's r and d held constant, as Ioffe prescribes).
- `l2_normalize` (norms over the last axis) and `feature_gain` (whose gradient sums over the batch) are
  SimbaV2's hyperspherical operations, with their reductions as matrix products in the same way.
- Dropout's Bernoulli masks from JAX's threefry generator cost ~6 ns per unit here, more than the dense
  layer they follow. `dropout_keep_mask` draws 64 bits from threefry and derives every unit's bit from a
  counter-based hash of its index keyed by them (MurmurHash3's 32-bit finaliser, applied twice), ~0.2 ns per
  unit; a unit is kept when its 32 bits are >= rate * 2^32, so the keep probability is 1 - rate to 2^-32.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

LAYER_NORM_EPSILON = 1e-6  # flax.linen.LayerNorm's default


def _mean_last(x: jax.Array) -> jax.Array:
    """mean over the last axis, keepdims, as a product with a ones vector: [..., 1]."""
    return x @ jnp.full((x.shape[-1], 1), 1.0 / x.shape[-1], x.dtype)


def _sum_leading(x: jax.Array) -> jax.Array:
    """sum over every axis but the last, as a product with a ones array: [W].

    The ones are computed from x (1 + 0 x[..., 0]) rather than made by `jnp.ones`, so that under `jax.vmap` (the
    critic ensemble, the seed axis) they carry the same batch axis as x and the product is a batched one,
    [N, B] . [N, B, W] -> [N, W]. A constant ones array is unbatched, and vmap's rule for a product with one
    batched operand folds N into x's free axes, [B] . [B, N W]: XLA then writes every such x transposed to
    [B, N, W] first, in a copy loop that re-runs the element-wise producers of x. Measured in the updates
    (HalfCheetah-v5 shapes, interleaved in one process): crossq-256 85.9 -> 100.1 updates/s, droq 127.9 -> 139.3.
    A non-finite x[..., 0] makes the whole sum NaN rather than its first column alone."""
    lead = list(range(x.ndim - 1))
    ones = 1.0 + 0.0 * x[..., 0]
    return jnp.tensordot(ones, x, axes=(lead, lead))


@jax.custom_vjp
def linear(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """y = x W, x [..., in], W [in, out] (a dense layer's product), whose gradient for W is computed in W's own
    layout: dL/dW = sum over the leading axes of x^T g, as one product of x and g in that order; dL/dx = g W^T.

    JAX's automatic transpose of x W computes dL/dW as the product of g and x, [out, in], and transposes it. XLA's
    CPU backend does not fold that transpose into the product: it fuses it into the consumers of the gradient,
    Adam's moment updates, which then read the gradient column by column (REDQ's moment updates of its
    [10, 256, 256] hidden kernel took 840 us each, twice the parameter update that reads three such arrays).
    Under `jax.vmap` over an ensemble whose members each get their own copy of x (`softac.networks.CriticEnsemble`)
    the weight gradient is one batched product, [N, B, in] . [N, B, out] -> [N, in, out].

    Measured in the updates: docs/speed.md, "The weight gradient's layout"."""
    return x @ kernel


def _linear_backward(residuals, g):
    x, kernel = residuals
    lead = list(range(x.ndim - 1))
    return g @ kernel.T, jnp.tensordot(x, g, axes=(lead, lead))


linear.defvjp(lambda x, kernel: (x @ kernel, (x, kernel)), _linear_backward)


class Dense(nn.Module):
    """y = `linear`(x, W) + b: flax.linen.Dense's maths, parameter names ("kernel" [in, features], "bias"
    [features]) and default initialisation (lecun-normal kernel, zero bias), so its checkpoints load unchanged."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)  # as flax's Dense: integer inputs become float
        return linear(x, kernel) + bias


def _layer_norm_forward(x, scale, bias, epsilon):
    mean = _mean_last(x)
    var = jnp.maximum(_mean_last(x * x) - mean * mean, 0.0)  # flax's fast variance: E[x^2] - E[x]^2
    inv_std = jax.lax.rsqrt(var + epsilon)
    x_hat = (x - mean) * inv_std
    return x_hat * scale + bias, (x_hat, inv_std, scale)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float) -> jax.Array:
    return _layer_norm_forward(x, scale, bias, epsilon)[0]


def _layer_norm_backward(epsilon, residuals, g):
    """For y = x_hat * scale + bias, x_hat = (x - mean(x)) / sqrt(var(x) + eps) over the last axis:
    dL/dx = (g' - mean(g') - x_hat mean(g' x_hat)) / sqrt(var + eps) with g' = g * scale;
    dL/dscale = sum over the leading axes of g x_hat; dL/dbias = the same sum of g."""
    x_hat, inv_std, scale = residuals
    g_hat = g * scale
    dx = inv_std * (g_hat - _mean_last(g_hat) - x_hat * _mean_last(g_hat * x_hat))
    return dx, _sum_leading(g * x_hat), _sum_leading(g)


_layer_norm.defvjp(lambda x, scale, bias, epsilon: _layer_norm_forward(x, scale, bias, epsilon), _layer_norm_backward)


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float = LAYER_NORM_EPSILON) -> jax.Array:
    """Layer normalisation over the last axis (Ba et al. 2016):
    y = (x - mean(x)) / sqrt(var(x) + epsilon) * scale + bias, var = mean(x^2) - mean(x)^2 (clipped at 0),
    as flax.linen.LayerNorm computes it; every reduction, forward and backward, is a matrix product."""
    return _layer_norm(x, scale, bias, epsilon)


class LayerNorm(nn.Module):
    """`layer_norm` with learned scale (ones) and bias (zeros) of the last axis's width: the parameters,
    their names and initialisation are flax.linen.LayerNorm's, so its checkpoints load unchanged."""

    epsilon: float = LAYER_NORM_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (width,))
        bias = self.param("bias", nn.initializers.zeros, (width,))
        return layer_norm(x, scale.astype(x.dtype), bias.astype(x.dtype), self.epsilon)


def _batch_moments(x: jax.Array):
    """(mean, biased variance) over every axis but the last, two-pass, as ones products."""
    n = math.prod(x.shape[:-1])
    mean = _sum_leading(x) / n
    centred = x - mean
    return mean, _sum_leading(centred * centred) / n


def _batch_renormalise_forward(x, scale, bias, running_mean, running_var, renormalise, epsilon, r_max, d_max):
    mean, var = _batch_moments(x)
    inv_std = jax.lax.rsqrt(var + epsilon)
    running_std = jnp.sqrt(running_var + epsilon)
    r = jnp.where(renormalise, jnp.clip((var + epsilon) * inv_std / running_std, 1.0 / r_max, r_max), 1.0)
    d = jnp.where(renormalise, jnp.clip((mean - running_mean) / running_std, -d_max, d_max), 0.0)
    # y = scale ((x - mu_B) inv_std r + d) + bias as one multiply-add per element: y = x a + c, [W] vectors a, c.
    a = scale * r * inv_std
    c = bias + scale * (d - mean * r * inv_std)
    # The residuals are x and [W] vectors: the backward pass recomputes x_hat in its own element-wise loop
    # rather than reading stored [..., W] arrays back from memory.
    return (x * a + c, mean, var), (x, mean, inv_std, r, d, scale)


@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _batch_renormalise(x, scale, bias, running_mean, running_var, renormalise, epsilon, r_max, d_max):
    return _batch_renormalise_forward(x, scale, bias, running_mean, running_var, renormalise, epsilon, r_max,
                                      d_max)[0]


def _batch_renormalise_backward(epsilon, r_max, d_max, residuals, cotangents):
    """With x_hat = (x - mu_B) / sigma_B, z = r x_hat + d, y = scale z + bias (r, d constants):
    dL/dx = r / sigma_B (g' - mean_B(g') - x_hat mean_B(g' x_hat)), g' = g * scale, plus the cotangents of the
    returned mu_B (1/n each) and var_B (2 (x - mu_B) / n); dL/dscale = sum_B g z = r sum_B g x_hat + d sum_B g;
    dL/dbias = sum_B g. Two sums over the batch, sum_B g and sum_B g x_hat, give all of them."""
    g, g_mean, g_var = cotangents
    x, mean, inv_std, r, d, scale = residuals
    n = math.prod(x.shape[:-1])
    centred = x - mean
    x_hat = centred * inv_std
    sum_g = _sum_leading(g)
    sum_g_x_hat = _sum_leading(g * x_hat)
    k = scale * r
    dx = (k * inv_std * (g - sum_g / n - x_hat * (sum_g_x_hat / n)) + g_mean / n + g_var * 2.0 * centred / n)
    return dx, r * sum_g_x_hat + d * sum_g, sum_g, jnp.zeros_like(mean), jnp.zeros_like(mean), None


_batch_renormalise.defvjp(_batch_renormalise_forward, _batch_renormalise_backward)


def batch_renormalise(x: jax.Array, scale: jax.Array, bias: jax.Array, running_mean: jax.Array,
                      running_var: jax.Array, renormalise: jax.Array, epsilon: float, r_max: float,
                      d_max: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batch Renormalization in training mode (Ioffe 2017) over every axis but the last (the features):
    with the minibatch's mu_B, sigma_B = sqrt(var_B + eps) and the running mu, sigma = sqrt(var + eps),
        y = scale ((x - mu_B) / sigma_B r + d) + bias,  r = clip(sg(sigma_B / sigma), 1/r_max, r_max),
                                                        d = clip(sg((mu_B - mu) / sigma), -d_max, d_max)
    where `renormalise` is true, r = 1 and d = 0 (batch normalisation) where false; sg is stop-gradient.
    Returns (y, mu_B, var_B) (var_B biased, two-pass, as jnp.var); every reduction is a matrix product."""
    return _batch_renormalise(x, scale, bias, running_mean, running_var, renormalise, epsilon, r_max, d_max)


def _sum_last(x: jax.Array) -> jax.Array:
    """sum over the last axis, keepdims, as a product with a ones vector: [..., 1]."""
    return x @ jnp.ones((x.shape[-1], 1), x.dtype)


def _l2_normalize_forward(x, epsilon):
    norm = jnp.sqrt(_sum_last(x * x))
    denominator = jnp.maximum(norm, epsilon)
    y = x / denominator
    return y, (y, denominator, norm > epsilon)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _l2_normalize(x: jax.Array, epsilon: float) -> jax.Array:
    return _l2_normalize_forward(x, epsilon)[0]


def _l2_normalize_backward(epsilon, residuals, g):
    """For y = x / max(||x||, eps): dL/dx = (g - y (g . y)) / ||x|| where ||x|| > eps, g / eps elsewhere."""
    y, denominator, above_floor = residuals
    return ((g - jnp.where(above_floor, y * _sum_last(g * y), 0.0)) / denominator,)


_l2_normalize.defvjp(_l2_normalize_forward, _l2_normalize_backward)


def l2_normalize(x: jax.Array, epsilon: float) -> jax.Array:
    """x / max(||x||_2, epsilon), the norm over the last axis: the projection onto the unit hypersphere."""
    return _l2_normalize(x, epsilon)


@jax.custom_vjp
def feature_gain(gain: jax.Array, x: jax.Array) -> jax.Array:
    """gain * x, gain [W] over the last axis of x [..., W]; d/dgain = sum over the leading axes of g x."""
    return gain * x


feature_gain.defvjp(lambda gain, x: (gain * x, (gain, x)),
                    lambda residuals, g: (_sum_leading(g * residuals[1]), g * residuals[0]))


def _murmur3_finalizer(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser (fmix32): a bijection of uint32 whose output bits each depend on every
    input bit."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def dropout_keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Independent Bernoulli(1 - rate) keep decisions of `shape`, a function of `key` alone: two 32-bit words
    k0, k1 from threefry(key), then for the unit of flat index i, bits_i = fmix32(fmix32(i xor k0) + k1), kept
    when bits_i >= floor(rate * 2^32)."""
    words = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    bits = _murmur3_finalizer(_murmur3_finalizer(index ^ words[0]) + words[1])
    return bits >= jnp.uint32(min(int(rate * 2.0**32), 2**32 - 1))


def dropout(x: jax.Array, key: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout (Srivastava et al. 2014): x / (1 - rate) where kept, 0 where dropped."""
    if rate == 0.0:
        return x
    keep = dropout_keep_mask(key, x.shape, rate)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


class Dropout(nn.Module):
    """`dropout` at `rate`, always on, its masks from the module's 'dropout' PRNG stream
    (`rngs={"dropout": key}`), as flax.linen.Dropout(rate, deterministic=False)."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.rate == 0.0:
            return x
        return dropout(x, self.make_rng("dropout"), self.rate)
