"""Training entirely inside XLA for environments written in JAX (gymnax, Brax).

`softac train --env gymnax:Pendulum-v1` (or `brax:<name>`) comes here instead of the Gymnasium loop:
the env id's prefix chooses the path (`is_jax_env`). The modules, one concern each:

- `envs`: adapters giving gymnax and Brax environments one interface (reset, step without auto-reset,
  terminated vs truncated, action rescaling), and their checks of spaces and ids;
- `replay`: the replay buffer as a pytree on the device, sampled with jax.random;
- `loop`: `make_train(cfg, env, agent)`: the pure, jitted `train_chunk(state, num_steps)` and evaluation;
- `run`: the host driver: run directories, logs, evaluation, checkpoints, resume, callbacks, progress.

This package imports nothing heavy at import time: `softac.train` asks `is_jax_env` on every run.
"""

from __future__ import annotations

#: Env id prefixes of the environments trained here: `gymnax:<id>` and `brax:<name>`.
JAX_ENV_PREFIXES = ("gymnax:", "brax:")


def is_jax_env(env_id: str) -> bool:
    """True when `env_id` names a JAX-native environment (`gymnax:<id>` or `brax:<name>`)."""
    return isinstance(env_id, str) and env_id.startswith(JAX_ENV_PREFIXES)
