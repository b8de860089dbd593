"""Helpers shared by the agent tests: hand-made batches, tree comparisons, jit once per agent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from softac.algos.base import Batch

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


def assert_update_many_equals_sequential_updates(agent, update, state, batches: Batch, num_steps: int) -> None:
    """agent.update_many over `num_steps` batches == that many sequential `update` calls: same state
    (and key, and count), metrics the means over the steps, and not the result of a single step."""
    fused, fused_metrics = jax.jit(agent.update_many)(state, batches)
    sequential, seq_metrics = state, []
    for g in range(num_steps):
        sequential, m = update(sequential, jax.tree_util.tree_map(lambda x: x[g], batches))
        seq_metrics.append(m)
    assert int(fused.num_updates) == num_steps and int(sequential.num_updates) == num_steps
    np.testing.assert_array_equal(np.asarray(fused.key), np.asarray(sequential.key))
    assert_trees_close(fused, sequential, rtol=1e-4, atol=1e-5)
    assert set(fused_metrics) == set(seq_metrics[0])
    for name in seq_metrics[0]:
        expected = np.mean([float(m[name]) for m in seq_metrics])
        np.testing.assert_allclose(float(fused_metrics[name]), expected, rtol=1e-4, atol=1e-6, err_msg=name)
    one_step, _ = update(state, jax.tree_util.tree_map(lambda x: x[0], batches))
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(leaves64(fused.critic_params),
                                                          leaves64(one_step.critic_params)))
