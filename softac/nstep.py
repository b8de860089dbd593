"""n-step returns over a ring replay buffer (docs/algorithms.md, "n-step returns"), one implementation for the
host buffer (numpy) and the compiled loop's (jax.numpy): every function takes the array module `xp`.

For a sampled transition t the target spans n_eff <= n env steps of the same environment:

    R_t = sum_{k < n_eff} gamma^k r_{t+k},   bootstrap from s_{t+n_eff} (next_obs of transition t+n_eff-1),
    terminated of that last transition, discount gamma^{n_eff},

where the walk stops after the first transition that terminated or was truncated (its next_obs is the true final
observation; the walk never crosses an episode boundary) and at the newest stored transition of that environment
(never past the write position, never into overwritten data). Shapes: `index` [...] slots, results [...].
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class NStepTarget(NamedTuple):
    """The parts of an n-step target for sampled slots [...]: R_t, the slot whose next_obs / terminated the target
    bootstraps from, and gamma^{n_eff}."""

    reward: Any  # [...] float32: sum_{k < n_eff} gamma^k r_{t+k}
    last_slot: Any  # [...] int: the slot of transition t + n_eff - 1
    discount: Any  # [...] float32: gamma^{n_eff}


def gamma_powers(gamma: float, n_steps: int) -> np.ndarray:
    """[gamma^0, ..., gamma^n] in float32 (computed in float64): the weights of the rewards and the discounts."""
    return (float(gamma) ** np.arange(n_steps + 1, dtype=np.float64)).astype(np.float32)


def walk_slots(index, position, size, capacity: int, stride: int, n_steps: int, xp):
    """(slots [..., n], stored [..., n]): the slots of transitions t, t+1, ..., t+n-1 of the environment that
    stored slot `index`, and whether each is stored (written after t, not past the newest transition).

    The buffer holds `size` transitions in ring order ending before `position`; vectorised collection stores the
    `stride` environments' transitions of one env step in consecutive slots, so the next transition of the same
    environment is `stride` slots later in that order."""
    oldest = (position - size) % capacity
    age = (index - oldest) % capacity  # 0 for the oldest stored transition, size - 1 for the newest
    ahead = age[..., None] + stride * xp.arange(n_steps)
    return (oldest + ahead) % capacity, ahead < size


def n_step_target(reward_seq, terminated_seq, truncated_seq, stored_seq, slots, gamma: float, n_steps: int,
                  xp) -> NStepTarget:
    """R_t = sum_{k < n_eff} gamma^k r_{t+k}, the last slot and gamma^{n_eff} (docs/algorithms.md, "n-step
    returns") from the walk's sequences [..., n] (reward; terminated and truncated as 0/1 floats;
    `stored` and `slots` from `walk_slots`); results [...]. The walk goes on past step k while transition k neither
    terminated nor was truncated and transition k + 1 is stored."""
    powers = gamma_powers(gamma, n_steps)
    ends = (terminated_seq > 0) | (truncated_seq > 0)
    goes_on = (~ends[..., :-1]) & stored_seq[..., 1:]  # [..., n-1]: the walk continues from step k to k + 1
    counted = xp.concatenate([xp.ones_like(goes_on[..., :1]), xp.cumprod(goes_on, axis=-1).astype(bool)], axis=-1)
    weights = xp.asarray(powers[:n_steps])
    reward = xp.sum(xp.where(counted, reward_seq * weights, xp.zeros_like(reward_seq)), axis=-1)
    n_eff = xp.sum(counted.astype(xp.int32), axis=-1)
    last_slot = xp.take_along_axis(slots, (n_eff - 1)[..., None], axis=-1)[..., 0]
    return NStepTarget(reward=reward.astype(xp.float32), last_slot=last_slot,
                       discount=xp.asarray(powers)[n_eff])
