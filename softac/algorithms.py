"""The algorithms softac trains, by the name of `SACConfig.algo`. Each is an agent class with the
same interface (init, update, update_many, explore, sample_action, deterministic_action), so the
trainer, replay buffer, checkpoints, seeds axis, CLI and logs serve them all."""

from __future__ import annotations

from softac.agent import SAC
from softac.agent_v1 import SACV1
from softac.config import SACConfig

AGENTS = {"sac": SAC, "sac-v1": SACV1}


def make_agent(cfg: SACConfig, obs_dim: int, action_dim: int):
    """The agent of `cfg.algo` for these observation and action sizes."""
    return AGENTS[cfg.algo](cfg, obs_dim, action_dim)
