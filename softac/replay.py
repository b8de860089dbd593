"""Preallocated ring-buffer replay memory on the host (numpy), one buffer per seed.

The buffers of all seeds share one set of arrays with a leading seed axis [N, capacity, ...]:
every seed collects the same number of transitions per loop iteration (one per environment of the
seed), so they fill in lockstep and share the write position. Sampling is uniform with replacement over the filled part, with an index stream
per seed (its own numpy Generator), so a seed samples the same indices whether it trains alone
or beside others.

Each transition also stores `truncated` (1.0 where a time limit cut its episode off): the episode boundaries
that n-step targets (`n_steps` > 1, softac.nstep) must not cross; one-step batches do not read it.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from softac import nstep
from softac.algos.base import Batch
from softac.errors import SoftacError

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")  # the stored fields a Batch is made of
#: Every stored field: FIELDS and the episode-end flag of time limits (n-step targets stop there).
STORED_FIELDS = FIELDS + ("truncated",)


def buffer_bytes(num_seeds: int, capacity: int, obs_dim: int, action_dim: int) -> int:
    """Memory of a ReplayBuffer's arrays: float32 obs, action, reward, next_obs, terminated, truncated per
    transition."""
    return 4 * num_seeds * capacity * (2 * obs_dim + action_dim + 3)


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation without swapping: Linux's MemAvailable (or the
    machine's physical memory), and no more than a cgroup v2 memory limit leaves (containers); None if unknown."""
    limit = _cgroup_memory_left()
    system = _system_memory()
    if system is None or limit is None:
        return system if limit is None else limit
    return min(system, limit)


def _cgroup_memory_left() -> Optional[int]:
    try:
        text = open("/sys/fs/cgroup/memory.max").read().strip()
        if text == "max":
            return None
        return int(text) - int(open("/sys/fs/cgroup/memory.current").read().strip())
    except (OSError, ValueError):
        return None


def _system_memory() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def check_buffer_fits(num_seeds: int, capacity: int, obs_dim: int, action_dim: int) -> None:
    """SoftacError, before anything is allocated, when the buffers cannot fit in the available memory."""
    needed = buffer_bytes(num_seeds, capacity, obs_dim, action_dim)
    available = available_memory()
    if available is not None and needed > available:
        seeds = f" for each of {num_seeds} seeds" if num_seeds > 1 else ""
        raise SoftacError(f"A replay buffer of {capacity:,} transitions{seeds} needs {format_bytes(needed)} of memory, "
                          f"more than the {format_bytes(available)} available; lower --buffer-size.")


class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, terminated, truncated) for `num_seeds` seeds.

    n_steps > 1 samples n-step targets (softac.nstep) with discount `gamma`; `num_envs`: the environments of a
    seed whose transitions `add_many` stores side by side each env step (an n-step walk follows one of them).
    """

    def __init__(self, num_seeds: int, capacity: int, obs_dim: int, action_dim: int, n_steps: int = 1,
                 gamma: float = 0.99, num_envs: int = 1):
        self.num_seeds = num_seeds
        self.capacity = capacity
        self.n_steps, self.gamma, self.num_envs = n_steps, gamma, num_envs
        self.obs = np.zeros((num_seeds, capacity, obs_dim), np.float32)
        self.action = np.zeros((num_seeds, capacity, action_dim), np.float32)
        self.reward = np.zeros((num_seeds, capacity), np.float32)
        self.next_obs = np.zeros((num_seeds, capacity, obs_dim), np.float32)
        self.terminated = np.zeros((num_seeds, capacity), np.float32)
        self.truncated = np.zeros((num_seeds, capacity), np.float32)  # 1.0: a time limit ended the episode here
        self.position = 0  # next slot to write
        self.size = 0  # filled slots

    def add(self, obs, action, reward, next_obs, terminated, truncated=None) -> None:
        """Store one transition per seed; each argument has leading axis num_seeds (truncated: none if None)."""
        truncated = np.zeros(np.shape(reward)) if truncated is None else truncated
        self.add_many(*(np.asarray(x)[:, None] for x in (obs, action, reward, next_obs, terminated, truncated)))

    def add_many(self, obs, action, reward, next_obs, terminated, truncated=None) -> None:
        """Store K transitions per seed (K environments of each seed, in order): arguments shaped [N, K, ...];
        truncated None: no time limit ended any of them."""
        count = np.shape(reward)[1]
        slots = (self.position + np.arange(count)) % self.capacity
        self.obs[:, slots] = obs
        self.action[:, slots] = action
        self.reward[:, slots] = reward
        self.next_obs[:, slots] = next_obs
        self.terminated[:, slots] = terminated
        self.truncated[:, slots] = 0.0 if truncated is None else truncated
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(self, rngs: list[np.random.Generator], batch_size: int, num_batches: int = 1) -> Batch:
        """`num_batches` minibatches per seed: arrays shaped [N, num_batches, batch_size, ...]; with n_steps > 1
        their reward, next_obs and terminated are those of n-step targets, with the discount of each."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = np.stack([rng.integers(0, self.size, size=num_batches * batch_size) for rng in rngs])
        seed_index = np.arange(self.num_seeds)[:, None]
        shape = (self.num_seeds, num_batches, batch_size)
        if self.n_steps == 1:
            return Batch(*(getattr(self, f)[seed_index, index].reshape(shape + getattr(self, f).shape[2:])
                           for f in FIELDS))
        slots, stored = nstep.walk_slots(index, self.position, self.size, self.capacity, self.num_envs,
                                         self.n_steps, np)
        walk = lambda array: array[seed_index[..., None], slots]  # noqa: E731
        target = nstep.n_step_target(walk(self.reward), walk(self.terminated), walk(self.truncated), stored, slots,
                                     self.gamma, self.n_steps, np)
        fields = (self.obs[seed_index, index], self.action[seed_index, index], target.reward,
                  self.next_obs[seed_index, target.last_slot], self.terminated[seed_index, target.last_slot],
                  target.discount)
        return Batch(*(x.reshape(shape + x.shape[2:]) for x in fields))

    def state_dict(self, seed_index: int) -> dict[str, Any]:
        """The filled part of seed `seed_index`'s buffer and the write position (for checkpoints)."""
        data = {f: getattr(self, f)[seed_index, : self.size].copy() for f in STORED_FIELDS}
        return {"data": data, "position": self.position, "size": self.size, "capacity": self.capacity}

    def load_state_dicts(self, states: list[dict[str, Any]]) -> None:
        """Restore every seed's buffer from `state_dict` outputs (one per seed, same position); a state without
        `truncated` (written before it was stored) holds no time-limit episode ends."""
        if len(states) != self.num_seeds:
            raise ValueError("one state per seed is needed")
        positions = {(s["position"], s["size"], s["capacity"]) for s in states}
        if len(positions) != 1:
            raise ValueError("the buffers to restore are at different positions")
        position, size, capacity = positions.pop()
        if capacity != self.capacity:
            raise ValueError("buffer capacity differs from the checkpoint's")
        for k, state in enumerate(states):
            for f in STORED_FIELDS:
                getattr(self, f)[k, :size] = state["data"].get(f, 0.0) if f == "truncated" else state["data"][f]
        self.position, self.size = position, size
