"""The algorithms softac trains, by the name of `SACConfig.algo`. Each is an agent class with the
same interface (init, update, update_many, explore, sample_action, deterministic_action), so the
trainer, replay buffer, checkpoints, seeds axis, CLI and logs serve them all."""

from __future__ import annotations

from softac.agent import SAC
from softac.agent_discrete import SACDiscrete
from softac.agent_v1 import SACV1
from softac.config import SACConfig
from softac.envs import ActionSpec
from softac.errors import SoftacError

AGENTS = {"sac": SAC, "sac-v1": SACV1, "sac-discrete": SACDiscrete}
CONTINUOUS = ("sac", "sac-v1")


def resolve_algo(cfg: SACConfig, spec: ActionSpec) -> SACConfig:
    """`cfg` with algo 'auto' replaced by the algorithm of the action space; SoftacError on a mismatch."""
    if cfg.algo == "auto":
        return cfg.replace(algo="sac-discrete" if spec.discrete else "sac")
    if spec.discrete and cfg.algo in CONTINUOUS:
        raise SoftacError(f"{cfg.env} has a Discrete action space, which --algo {cfg.algo} does not handle; "
                          "use --algo sac-discrete (or auto).")
    if not spec.discrete and cfg.algo == "sac-discrete":
        raise SoftacError(f"{cfg.env} has a continuous action space; --algo sac-discrete needs a Discrete one.")
    return cfg


def make_agent(cfg: SACConfig, obs_dim: int, action_dim: int):
    """The agent of `cfg.algo` (resolved, not 'auto') for these observation and action sizes."""
    return AGENTS[cfg.algo](cfg, obs_dim, action_dim)
