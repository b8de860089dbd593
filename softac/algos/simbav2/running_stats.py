"""SimbaV2's running statistics, updated once per env step (`Agent.observe`): the observation's mean and
variance, and the discounted return G whose spread scales the rewards. Pure functions of arrays, as the
authors' ObservationNormalizer and RewardNormalizer wrappers compute them (Gymnasium's RunningMeanStd).
Equations: docs/algorithms.md, "SimbaV2 (Lee et al., 2025)", "Reward scaling".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

#: The starting count of a running mean and variance (Gymnasium's RunningMeanStd epsilon).
COUNT_EPS = 1e-4
#: Added to the return variance under the square root of the reward scale.
RETURN_EPS = 1e-8


def initial_moments(shape: tuple[int, ...]) -> dict:
    """{mean 0, var 1, count COUNT_EPS}, mean and var of `shape`."""
    return {"mean": jnp.zeros(shape, jnp.float32), "var": jnp.ones(shape, jnp.float32),
            "count": jnp.asarray(COUNT_EPS, jnp.float32)}


def update_moments(moments: dict, batch: jax.Array) -> dict:
    """The running mean and variance after a batch [E, ...] (Chan et al.'s parallel update):

        n' = n + E,  delta = mean_B - mean,  mean' = mean + delta E / n',
        var' = (var n + var_B E + delta^2 n E / n') / n'

    with mean_B and var_B the batch's mean and (population) variance over its first axis."""
    count = moments["count"]
    batch_count = batch.shape[0]
    batch_mean, batch_var = jnp.mean(batch, axis=0), jnp.var(batch, axis=0)
    total = count + batch_count
    delta = batch_mean - moments["mean"]
    mean = moments["mean"] + delta * (batch_count / total)
    m2 = moments["var"] * count + batch_var * batch_count + jnp.square(delta) * count * batch_count / total
    return {"mean": mean, "var": m2 / total, "count": total}


def initial_return_stats(num_envs: int) -> dict:
    """The discounted return of each environment (0), its running moments and the running max of |G| (0)."""
    return {"discounted_return": jnp.zeros((num_envs,), jnp.float32), "moments": initial_moments(()),
            "max_abs_return": jnp.zeros((), jnp.float32)}


def update_return_stats(stats: dict, reward: jax.Array, done: jax.Array, gamma: float) -> dict:
    """One env step of every environment ([E] each; done = terminated or truncated of this transition):

        G <- gamma (1 - done) G + r,   moments <- update(moments, G),   G_max_seen <- max(G_max_seen, max |G|)

    As the authors' wrapper (and Gymnasium's NormalizeReward): the return of an episode that ends at this
    transition starts again from its last reward."""
    discounted = gamma * (1.0 - done) * stats["discounted_return"] + reward
    return {"discounted_return": discounted, "moments": update_moments(stats["moments"], discounted),
            "max_abs_return": jnp.maximum(stats["max_abs_return"], jnp.max(jnp.abs(discounted)))}


def reward_scale(stats: dict, return_bound: float) -> jax.Array:
    """The reward divisor max(sqrt(var_G + RETURN_EPS), max|G| / G_max): the return's standard deviation,
    raised where needed so that the largest return seen scales to at most G_max."""
    return jnp.maximum(jnp.sqrt(stats["moments"]["var"] + RETURN_EPS), stats["max_abs_return"] / return_bound)
