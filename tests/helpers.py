"""Helpers shared by the agent tests: hand-made batches, tree comparisons, jit once per agent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from softac.agent import Batch

OBS_DIM, ACTION_DIM, BATCH = 3, 2, 8


def make_batch(seed: int, leading=()) -> Batch:
    """A batch of BATCH random continuous transitions (transitions 1 and 5 terminal), leading axes first."""
    rng = np.random.default_rng(seed)
    shape = tuple(leading) + (BATCH,)
    terminated = np.zeros(shape)
    terminated[..., 1] = 1.0
    terminated[..., 5] = 1.0
    return Batch(
        obs=jnp.asarray(rng.normal(size=shape + (OBS_DIM,)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1.0, 1.0, size=shape + (ACTION_DIM,)), jnp.float32),
        reward=jnp.asarray(rng.normal(size=shape), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=shape + (OBS_DIM,)), jnp.float32),
        terminated=jnp.asarray(terminated, jnp.float32),
    )


def leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(tree)]


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(leaves64(a), leaves64(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(leaves64(a), leaves64(b)):
        np.testing.assert_array_equal(x, y)


_JITTED: dict = {}


def jitted(agent, name: str):
    """jax.jit of agent.<name>, compiled once per agent (with tiny networks, compiling is the cost)."""
    key = (id(agent), name)
    if key not in _JITTED:
        _JITTED[key] = (agent, jax.jit(getattr(agent, name)))
    return _JITTED[key][1]
