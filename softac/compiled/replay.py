"""The replay buffers of the compiled loop: a pytree of device arrays inside the train state.

Every seed has a ring of `capacity` transitions; the seeds' rings share one set of arrays with a leading
seed axis [N, capacity, ...] and one write position and size, since every seed stores one transition per
env step (the layout of the Gymnasium loop's softac.replay.ReplayBuffer). The shared scalar position makes
a write one dynamic-update-slice, done in place inside the compiled loop; a position per seed would make it
a scatter that XLA copies the whole buffer for on every step. Sampling is uniform with replacement over the
filled part with each seed's own jax.random key (the Gymnasium loop draws its indices from a numpy
Generator: the same distribution, another stream). Checkpoints hold one seed's buffer in the format of
`ReplayBuffer.state_dict`, so there is one checkpoint format for both loops. With n_steps > 1 a minibatch holds
n-step targets, computed by the host buffer's function (softac.nstep) in jax.numpy, so both loops build the same
targets from the same stored transitions.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from softac import nstep
from softac.algos.base import Batch
from softac.replay import FIELDS, STORED_FIELDS


@struct.dataclass
class DeviceBuffer:
    """Every seed's ring buffer (obs, action, reward, next_obs, terminated, truncated), the write position and the
    size."""

    obs: jax.Array  # [N, capacity, obs_dim]
    action: jax.Array  # [N, capacity, stored action dim]
    reward: jax.Array  # [N, capacity]
    next_obs: jax.Array  # [N, capacity, obs_dim]
    terminated: jax.Array  # [N, capacity], 1.0 for a terminal state (not a time limit)
    truncated: jax.Array  # [N, capacity], 1.0 where a time limit ended the episode (n-step targets stop there)
    position: jax.Array  # int32: the next slot to write (every seed's)
    size: jax.Array  # int32: filled slots (every seed's)

    @property
    def capacity(self) -> int:
        return int(self.reward.shape[1])


def _tails(obs_dim: int, action_dim: int) -> list[tuple[int, ...]]:
    return [(obs_dim,), (action_dim,), (), (obs_dim,), (), ()]  # STORED_FIELDS


def empty_buffer(num_seeds: int, capacity: int, obs_dim: int, action_dim: int) -> DeviceBuffer:
    """Empty buffers (zeros) of `capacity` transitions for `num_seeds` seeds."""
    arrays = [jnp.zeros((num_seeds, capacity) + tail, jnp.float32) for tail in _tails(obs_dim, action_dim)]
    return DeviceBuffer(*arrays, position=jnp.int32(0), size=jnp.int32(0))


def add(buffer: DeviceBuffer, obs, action, reward, next_obs, terminated, truncated) -> DeviceBuffer:
    """The buffers with one transition per seed (leading axis N) written at the position (overwriting the
    oldest when full)."""
    i = buffer.position
    # A dynamic-update-slice (in place in XLA's loop); `array.at[:, i].set` would be a scatter, copied every step.
    write = lambda array, value: jax.lax.dynamic_update_slice_in_dim(  # noqa: E731
        array, jnp.asarray(value, array.dtype)[:, None], i, axis=1)
    return buffer.replace(obs=write(buffer.obs, obs), action=write(buffer.action, action),
                          reward=write(buffer.reward, reward), next_obs=write(buffer.next_obs, next_obs),
                          terminated=write(buffer.terminated, terminated), truncated=write(buffer.truncated, truncated),
                          position=(i + 1) % buffer.capacity, size=jnp.minimum(buffer.size + 1, buffer.capacity))


def add_where(buffer: DeviceBuffer, valid, obs, action, reward, next_obs, terminated, truncated) -> DeviceBuffer:
    """`add` where `valid` (a traced bool), else the buffer unchanged (its slot at the position rewritten with
    what it holds)."""
    i = buffer.position
    keep = lambda array, value: jnp.where(valid, jnp.asarray(value, array.dtype),  # noqa: E731
                                          jax.lax.dynamic_index_in_dim(array, i, axis=1, keepdims=False))
    added = add(buffer, *(keep(getattr(buffer, f), v) for f, v in zip(STORED_FIELDS, (obs, action, reward, next_obs,
                                                                                        terminated, truncated))))
    return added.replace(position=jnp.where(valid, added.position, buffer.position),
                         size=jnp.where(valid, added.size, buffer.size))


def sample(buffer: DeviceBuffer, keys: jax.Array, batch_size: int, num_batches: int, n_steps: int = 1,
           gamma: float = 0.99) -> Batch:
    """`num_batches` minibatches per seed, [N, num_batches, batch_size, ...]; seed n's indices are uniform over
    the filled part, drawn with keys[n]. n_steps > 1: n-step targets (softac.nstep) with their discounts."""
    index = jax.vmap(lambda key: jax.random.randint(key, (num_batches, batch_size), 0,
                                                    jnp.maximum(buffer.size, 1)))(keys)
    if n_steps == 1:
        return Batch(*(jax.vmap(lambda array, i: array[i])(getattr(buffer, f), index) for f in FIELDS))

    def one_seed(obs, action, reward, next_obs, terminated, truncated, i):
        slots, stored = nstep.walk_slots(i, buffer.position, buffer.size, buffer.capacity, 1, n_steps, jnp)
        target = nstep.n_step_target(reward[slots], terminated[slots], truncated[slots], stored, slots, gamma,
                                     n_steps, jnp)
        return Batch(obs[i], action[i], target.reward, next_obs[target.last_slot], terminated[target.last_slot],
                     target.discount)

    return jax.vmap(one_seed)(*(getattr(buffer, f) for f in STORED_FIELDS), index)


def state_dict(buffer: DeviceBuffer, seed_index: int) -> dict[str, Any]:
    """Seed `seed_index`'s buffer (host arrays) as `softac.replay.ReplayBuffer.state_dict` writes it."""
    size = int(buffer.size)
    return {"data": {f: np.asarray(getattr(buffer, f)[seed_index, :size]) for f in STORED_FIELDS},
            "position": int(buffer.position), "size": size, "capacity": buffer.capacity}


def from_state_dicts(states: Sequence[dict[str, Any]], capacity: int, obs_dim: int, action_dim: int) -> DeviceBuffer:
    """The buffers of checkpoints' `state_dict`s, one per seed (ValueError if they do not fit these sizes or
    stand at different positions); a state without `truncated` (an older checkpoint) holds no time-limit ends."""
    positions = {(int(s["position"]), int(s["size"]), int(s["capacity"])) for s in states}
    if len(positions) != 1:
        raise ValueError("the buffers to restore are at different positions")
    position, size, saved_capacity = positions.pop()
    if saved_capacity != capacity:
        raise ValueError("buffer capacity differs from the checkpoint's")
    arrays = []
    for f, tail in zip(STORED_FIELDS, _tails(obs_dim, action_dim)):
        full = np.zeros((len(states), capacity) + tail, np.float32)
        for k, state in enumerate(states):
            if f == "truncated" and f not in state["data"]:
                continue
            data = np.asarray(state["data"][f], np.float32)
            if data.shape != (size,) + tail:
                raise ValueError(f"replay field {f} has shape {data.shape}, expected {(size,) + tail}")
            full[k, :size] = data
        arrays.append(jnp.asarray(full))
    return DeviceBuffer(*arrays, position=jnp.int32(position), size=jnp.int32(size))
