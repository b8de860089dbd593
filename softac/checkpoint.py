"""Atomic checkpoints of one seed's run: everything the training loop needs to continue exactly.

A checkpoint is one file, `checkpoint.pkl` in the run directory, holding
- the agent state (params, target params, optimiser states, log alpha, PRNG key, update count),
  serialised with flax.serialization against the agent's own state structure;
- the replay buffer's filled part, write position and size;
- the loop state: env step, current observation, episode return/length/count, the numpy
  Generator state of warm-up actions and minibatch indices, and the environment's state
  (see softac.envs for what is captured per kind of environment).

It is written to a temporary name in the same directory, flushed to disk, then renamed over the
old one (os.replace is atomic), so a crash during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Optional

import flax.serialization

from softac.errors import SoftacError

CHECKPOINT_NAME = "checkpoint.pkl"
FORMAT_VERSION = 1


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(run_dir: str | Path, agent_state: Any, buffer_state: dict, loop_state: dict) -> Path:
    """Write the checkpoint of one seed atomically; returns its path."""
    path = checkpoint_path(run_dir)
    payload = {
        "format": FORMAT_VERSION,
        "agent_state": flax.serialization.to_bytes(agent_state),
        "buffer": buffer_state,
        "loop": loop_state,
    }
    tmp = path.with_name(f".{CHECKPOINT_NAME}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(run_dir: str | Path, agent_state_template: Any) -> tuple[Any, dict, dict]:
    """(agent_state, buffer_state, loop_state) of a run directory; SoftacError if there is none or it is unreadable."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise SoftacError(f"{run_dir} holds no checkpoint ({CHECKPOINT_NAME} is missing).")
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError("unknown format")
        agent_state = flax.serialization.from_bytes(agent_state_template, payload["agent_state"])
        return agent_state, payload["buffer"], payload["loop"]
    except Exception as exc:
        raise SoftacError(f"The checkpoint in {run_dir} is unreadable ({type(exc).__name__}).") from None


def read_checkpoint_agent(run_dir: str | Path, agent_state_template: Any) -> Any:
    """Only the agent state of a checkpoint (for evaluation); same errors as load_checkpoint."""
    return load_checkpoint(run_dir, agent_state_template)[0]


def checkpoint_step(run_dir: str | Path) -> Optional[int]:
    """The env step of a run directory's checkpoint, or None if it has none or it is unreadable."""
    try:
        with open(checkpoint_path(run_dir), "rb") as f:
            return int(pickle.load(f)["loop"]["step"])
    except Exception:
        return None
