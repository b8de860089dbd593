"""softac.layers: LayerNorm, batch renormalisation and the dense layers' product against their plain formulas
differentiated by JAX or written out (float64), LayerNorm and Dense against flax's (float32, the same
parameters); dropout masks against the Bernoulli statistics they must have."""

import math
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac.algos.droq.networks import DropoutCritic
from softac.layers import (Dense, LayerNorm, batch_renormalise, dropout, dropout_keep_mask, feature_gain, l2_normalize,
                           layer_norm, linear)
from tests.test_distributions import enable_x64


def plain_layer_norm(x, scale, bias, epsilon=1e-6):
    """(x - mean) / sqrt(var + eps) * scale + bias with jnp's own reductions (two-pass variance)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + epsilon) * scale + bias


def test_layer_norm_value_and_gradients_match_the_formula_in_float64():
    with enable_x64():
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(1.0, 3.0, (3, 5, 16)))
        scale = jnp.asarray(rng.normal(1.0, 0.3, 16))
        bias = jnp.asarray(rng.normal(0.0, 0.3, 16))
        weights = jnp.asarray(rng.normal(size=(3, 5, 16)))

        def loss(fn):
            return lambda x, s, b: jnp.sum(weights * jnp.sin(fn(x, s, b)))

        np.testing.assert_allclose(layer_norm(x, scale, bias), plain_layer_norm(x, scale, bias), rtol=1e-10, atol=1e-10)
        ours = jax.grad(loss(layer_norm), argnums=(0, 1, 2))(x, scale, bias)
        reference = jax.grad(loss(plain_layer_norm), argnums=(0, 1, 2))(x, scale, bias)
        for got, want in zip(ours, reference):
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
        # vmapped over an ensemble axis of parameters, as the critics use it
        scales = jnp.stack([scale, 2.0 * scale])
        vmapped = jax.vmap(jax.grad(loss(layer_norm), argnums=1), in_axes=(None, 0, None))(x, scales, bias)
        np.testing.assert_allclose(vmapped[1], jax.grad(loss(plain_layer_norm), argnums=1)(x, 2.0 * scale, bias),
                                   rtol=1e-9, atol=1e-10)


def test_layer_norm_module_matches_flax_with_the_same_parameters():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 32)) * 3.0 + 1.0
    params = nn.LayerNorm().init(jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_structure(LayerNorm().init(jax.random.PRNGKey(0), x)) == jax.tree_util.tree_structure(params)
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(2), a.shape), params)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)) ** 2)

    np.testing.assert_allclose(LayerNorm().apply(params, x), nn.LayerNorm().apply(params, x), atol=2e-6)
    ours = jax.grad(loss(LayerNorm()), argnums=(0, 1))(params, x)
    theirs = jax.grad(loss(nn.LayerNorm()), argnums=(0, 1))(params, x)
    for got, want in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize("rate", [0.01, 0.3])
def test_dropout_masks_are_bernoulli_with_the_rate_and_independent(rate):
    n = 1_000_000
    mask = np.asarray(dropout_keep_mask(jax.random.PRNGKey(0), (1000, 1000), rate))
    dropped = ~mask.ravel()
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(dropped.sum() - n * rate) < 5 * sd
    # neighbouring units, and the same unit under another key, are dropped together at rate^2
    for pair in (dropped[:-1] & dropped[1:],
                 dropped & ~np.asarray(dropout_keep_mask(jax.random.PRNGKey(1), (1000, 1000), rate)).ravel()):
        m = pair.size
        assert abs(pair.sum() - m * rate**2) < 5 * math.sqrt(m * rate**2 * (1 - rate**2))
    # the same key gives the same mask; a key derived from it another
    np.testing.assert_array_equal(mask, dropout_keep_mask(jax.random.PRNGKey(0), (1000, 1000), rate))
    assert not np.array_equal(mask, dropout_keep_mask(jax.random.split(jax.random.PRNGKey(0))[0], (1000, 1000), rate))


def test_dropout_scales_kept_units_and_zeroes_the_others():
    x = jnp.arange(1.0, 4001.0).reshape(4, 1000)
    key = jax.random.PRNGKey(3)
    y = np.asarray(dropout(x, key, 0.2))
    keep = np.asarray(dropout_keep_mask(key, x.shape, 0.2))
    np.testing.assert_allclose(y[keep], np.asarray(x)[keep] / 0.8, rtol=1e-6)
    assert (y[~keep] == 0).all() and 0 < (~keep).sum() < x.size
    np.testing.assert_array_equal(dropout(x, key, 0.0), x)


def test_dropout_critic_keeps_flax_parameter_names():
    """DroQ checkpoints written with flax's LayerNorm and Dropout load into the critic built from softac.layers."""

    class FlaxLayersCritic(nn.Module):
        @nn.compact
        def __call__(self, obs, action):
            x = jnp.concatenate([obs, action], axis=-1)
            for width in (8, 8):
                x = nn.Dense(width)(x)
                x = nn.Dropout(rate=0.01, deterministic=False)(x)
                x = nn.relu(nn.LayerNorm()(x))
            return nn.Dense(1)(x)[..., 0]

    obs, action = jnp.zeros((3, 4)), jnp.zeros((3, 2))
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    ours = DropoutCritic((8, 8), dropout_rate=0.01).init(rngs, obs, action)
    theirs = FlaxLayersCritic().init(rngs, obs, action)
    shapes = lambda tree: jax.tree_util.tree_map(jnp.shape, tree)  # noqa: E731
    assert shapes(ours) == shapes(theirs)


def plain_batch_renormalise(x, scale, bias, running_mean, running_var, renormalise, eps=1e-3, r_max=3.0, d_max=5.0):
    """Ioffe's train-mode formula with jnp's reductions and stop-gradient on r and d (CrossQ's code before)."""
    axes = tuple(range(x.ndim - 1))
    mean, var = jnp.mean(x, axis=axes), jnp.var(x, axis=axes)
    std, running_std = jnp.sqrt(var + eps), jnp.sqrt(running_var + eps)
    x_hat = (x - mean) / std
    r = jnp.clip(jax.lax.stop_gradient(std / running_std), 1.0 / r_max, r_max)
    d = jnp.clip(jax.lax.stop_gradient((mean - running_mean) / running_std), -d_max, d_max)
    x_hat = jnp.where(renormalise, x_hat * r + d, x_hat)
    return x_hat * scale + bias, mean, var


@pytest.mark.parametrize("renormalise", [False, True])
def test_batch_renormalise_value_and_gradients_match_the_formula_in_float64(renormalise):
    with enable_x64():
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.normal(2.0, 3.0, (2, 7, 6)))  # two leading (batch) axes
        scale, bias = jnp.asarray(rng.normal(1.0, 0.3, 6)), jnp.asarray(rng.normal(0.0, 0.3, 6))
        # running statistics far enough from the batch's that r and d are clipped in some features
        running_mean = jnp.asarray(rng.normal(2.0, 10.0, 6))
        running_var = jnp.asarray(rng.uniform(0.2, 40.0, 6))
        flag = jnp.asarray(renormalise)
        weights = jnp.asarray(rng.normal(size=(2, 7, 6)))

        def loss(fn):
            def value(x, s, b):
                y, mean, var = fn(x, s, b, running_mean, running_var, flag, 1e-3, 3.0, 5.0)
                return jnp.sum(weights * jnp.sin(y)) + jnp.sum(mean ** 2) + jnp.sum(jnp.sqrt(var))
            return value

        reference = lambda x, s, b, m, v, f, *_: plain_batch_renormalise(x, s, b, m, v, f)  # noqa: E731
        for got, want in zip(batch_renormalise(x, scale, bias, running_mean, running_var, flag, 1e-3, 3.0, 5.0),
                             reference(x, scale, bias, running_mean, running_var, flag)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        ours = jax.grad(loss(batch_renormalise), argnums=(0, 1, 2))(x, scale, bias)
        wanted = jax.grad(loss(reference), argnums=(0, 1, 2))(x, scale, bias)
        for got, want in zip(ours, wanted):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_l2_normalize_and_feature_gain_match_their_formulas_in_float64():
    with enable_x64():
        rng = np.random.default_rng(2)
        x = jnp.asarray(rng.normal(size=(3, 4, 9)))
        x = x.at[0, 0].set(1e-12)  # a row under the norm's floor: divided by the floor, not its norm
        gain = jnp.asarray(rng.normal(1.0, 0.3, 9))
        weights = jnp.asarray(rng.normal(size=(3, 4, 9)))

        def plain(gain, x):
            z = gain * x
            return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-8)

        def ours(gain, x):
            return l2_normalize(feature_gain(gain, x), 1e-8)

        np.testing.assert_allclose(ours(gain, x), plain(gain, x), rtol=1e-12, atol=1e-12)
        loss = lambda fn: lambda g, x: jnp.sum(weights * jnp.sin(fn(g, x)))  # noqa: E731
        for got, want in zip(jax.grad(loss(ours), argnums=(0, 1))(gain, x), jax.grad(loss(plain), argnums=(0, 1))(gain, x)):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_batch_sums_under_vmap_are_batched_products_equal_to_jnp_sum():
    # softac.layers' batch sums (LayerNorm's scale and bias gradients, Batch Renormalization's statistics) under
    # vmap over an ensemble axis: equal to jnp.sum over the batch, and computed as a dot_general with the
    # ensemble axis as a batch dimension (a product with constant ones would fold it into x's free axes, which
    # XLA transposes x for: docs/speed.md, "Batch sums under vmap").
    from softac.layers import _sum_leading

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 5, 4))  # [ensemble, batch..., features]
    np.testing.assert_allclose(jax.vmap(_sum_leading)(x), jnp.sum(x, axis=(1, 2)), rtol=1e-5, atol=1e-5)
    dots = [e for e in jax.make_jaxpr(jax.vmap(_sum_leading))(x).eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 1
    (_, _), (lhs_batch, rhs_batch) = dots[0].params["dimension_numbers"]
    assert len(lhs_batch) == 1 and len(rhs_batch) == 1


def test_linear_and_its_gradient_match_a_float64_matmul_also_under_vmap_with_a_shared_input():
    # softac.layers.linear (the dense layers' product, a custom VJP computing dL/dW in W's layout) against the
    # value and gradients written out as float64 einsums, for an ensemble of 3 kernels sharing one input (x
    # unbatched, W batched under vmap), with x narrower than, wider than and as wide as the output.
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(3), 3)
    for in_dim, out_dim in [(5, 9), (9, 5), (6, 6)]:
        x = jax.random.normal(kx, (2, 7, in_dim))
        kernel = jax.random.normal(kw, (3, in_dim, out_dim))  # an ensemble of 3
        weights = jax.random.normal(kg, (3, 2, 7, out_dim))

        def loss(f, x, kernel):
            return jnp.sum(weights * jax.vmap(f, in_axes=(None, 0))(x, kernel))

        got = jax.grad(partial(loss, linear), argnums=(0, 1))(x, kernel)
        x64, k64 = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
        w64 = np.asarray(weights, np.float64)
        want_x = np.einsum("nbto,nio->bti", w64, k64)
        want_k = np.einsum("bti,nbto->nio", x64, w64)
        np.testing.assert_allclose(jax.vmap(linear, in_axes=(None, 0))(x, kernel),
                                   np.einsum("bti,nio->nbto", x64, k64), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[0], want_x, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(got[1], want_k, rtol=1e-5, atol=1e-4)


def test_linear_weight_gradient_is_one_batched_product_in_the_kernels_layout():
    # Under vmap over an ensemble whose members get their own input (softac.networks.CriticEnsemble), dL/dW is one
    # dot_general with the ensemble as a batch dimension and x as its first operand, so its output is [N, in, out]
    # with nothing to transpose; the automatic gradient of x @ W has g first and transposes its result
    # (docs/speed.md, "The weight gradient's layout").
    x = jnp.ones((3, 7, 4))
    kernel = jnp.ones((3, 4, 8))
    for f in (linear, lambda x, k: x @ k):
        grad_w = jax.grad(lambda k: jnp.sum(jax.vmap(f)(x, k) ** 2))
        eqns = jax.make_jaxpr(grad_w)(kernel).eqns
        weight_dots = [e for e in eqns if e.primitive.name == "dot_general"
                       and tuple(e.outvars[0].aval.shape) == (3, 4, 8)]
        if f is linear:
            assert len(weight_dots) == 1
            (_, _), (lhs_batch, rhs_batch) = weight_dots[0].params["dimension_numbers"]
            assert len(lhs_batch) == 1 and len(rhs_batch) == 1
            assert weight_dots[0].invars[0].aval.shape == x.shape  # x first
        else:
            assert not weight_dots  # the automatic gradient computes [N, out, in] and transposes it


def test_dense_matches_flax_dense_in_parameters_output_and_gradients():
    x = jax.random.normal(jax.random.PRNGKey(4), (5, 3, 6))
    ours, theirs = Dense(4), nn.Dense(4)
    params = theirs.init(jax.random.PRNGKey(5), x)
    ours_params = ours.init(jax.random.PRNGKey(5), x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, ours_params, params)  # same names, same initialisation
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6, atol=1e-6)
    g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(ours.apply(p, x))))(params)
    g_theirs = jax.grad(lambda p: jnp.sum(jnp.sin(theirs.apply(p, x))))(params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), g_ours, g_theirs)
    # integer inputs are promoted to float, as flax's Dense promotes them
    x_int = jnp.arange(6).reshape(2, 3)
    params_int = theirs.init(jax.random.PRNGKey(6), x_int)
    assert ours.apply(params_int, x_int).dtype == jnp.float32
    np.testing.assert_allclose(ours.apply(params_int, x_int), theirs.apply(params_int, x_int), rtol=1e-6)
