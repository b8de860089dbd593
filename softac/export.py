"""Exporting a trained run's deterministic policy for deployment (`softac export`): an ONNX model, or an
npz file of weights that `NumpyPolicy` (softac/numpy_policy.py, numpy only) evaluates.

Both compute the policy softac evaluates with, in the environment's action units, from observations
[B, obs_dim] (B any batch size):

    Box [low, high]:     a = clip(low + (tanh(mu(s)) + 1) (high - low) / 2, low, high)   [B, action_dim]
    Discrete(n, start):  a = argmax_i logits_i(s) + start                                  [B]

with the actor network as trained, including any normalisation layers in evaluation mode (with their
running statistics). The algorithm supplies both forms of its policy: `deterministic_action` (the JAX
function jax2onnx converts) and `policy_layers` (the numpy layer list); this module names no algorithm.

Observations go in as the network saw them in training: the environment's own observations, or for a
run with `flatten_obs` the flattened ones (gymnasium.spaces.flatten(observation_space, obs), what
Gymnasium's FlattenObservation wrapper returns), which the deployment must then flatten the same way.

- ONNX (`export_onnx`): jax2onnx converts the JAX function `env_action_function(agent)` (the agent's own
  `deterministic_action` and the action rescaling), opset 17; input "obs" float32 [B, obs_dim] with a
  symbolic batch axis B, output "action" (float32 [B, action_dim], or int32 [B] for Discrete).
  Needs the optional dependencies jax2onnx, onnx and onnxruntime (pip install "softac[export]").
- npz (`export_npz`): the network as a list of layers (dense, relu, batch_norm) and a head, in the
  format documented in softac/numpy_policy.py. Reading it needs numpy only.

Each export is checked before it is written: on random observations its actions must equal the loaded
agent's `act(obs, deterministic=True)` (Discrete), or agree with them to 1e-4 of the action range (Box).
The file is written atomically (a temporary file renamed over `out`); an earlier export at `out` is
replaced, but never a run's own files or anything inside a checkpoint directory.

This module imports JAX only inside its functions, so importing it (and `NumpyPolicy` from it) does not
load JAX by itself; the `softac` package's `__init__` does, though, so a JAX-free deployment copies
softac/numpy_policy.py alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from softac.errors import SoftacError
from softac.numpy_policy import NumpyPolicy
from softac.rundir import CONFIG_NAME, fsync_dir, write_bytes_durably

if TYPE_CHECKING:
    from softac.evaluate import Agent

__all__ = ["FORMATS", "Exported", "NumpyPolicy", "env_action_function", "export_npz", "export_onnx", "export_policy",
           "numpy_policy_of"]

FORMATS = ("onnx", "npz")
ONNX_OPSET = 17
ONNX_MARK = "softac.export"  # metadata key of the ONNX models softac writes (an earlier export may be replaced)
INSTALL_HINT = 'pip install "softac[export]"'

# The exported policy must reproduce the agent's actions on this many random observations.
CHECK_OBSERVATIONS = 256
CHECK_TOLERANCE = 1e-4  # in units of the action range (high - low) for Box actions; Discrete actions must be equal


# ------------------------------------------------------------------------------ the policy as layers
def numpy_policy_of(agent: "Agent") -> NumpyPolicy:
    """The deterministic policy of a loaded agent (`softac.evaluate.load_agent`) as a NumpyPolicy: the layers
    are the algorithm's own (`policy_layers`, softac.algos.base.Agent), the head follows the action space."""
    layers, spec = agent.algorithm.policy_layers(agent.policy), agent.action_spec
    common = {"obs_dim": agent.algorithm.obs_dim, "env": agent.config.env, "algo": agent.config.algo}
    if spec.discrete:
        return NumpyPolicy(layers, "categorical", action_start=spec.start, **common)
    return NumpyPolicy(layers, "squashed_gaussian", action_low=spec.low, action_high=spec.high, **common)


# ------------------------------------------------------------------------------ the policy as a JAX function
def env_action_function(agent: "Agent") -> Callable:
    """The JAX function that the ONNX model is converted from: obs [B, obs_dim] float32 -> the environment's
    actions, `agent`'s deterministic_action followed by ActionSpec.to_env's mapping: clip(low + (a + 1)
    (high - low) / 2, low, high) [B, action_dim] for Box actions, argmax + start (int32 [B]) for Discrete."""
    import jax.numpy as jnp

    sac, policy, spec = agent.algorithm, agent.policy, agent.action_spec

    def env_action(obs):
        action = sac.deterministic_action(policy, obs)
        if spec.discrete:
            return action[..., 0].astype(jnp.int32) + spec.start
        low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
        return jnp.clip(low + 0.5 * (action + 1.0) * (high - low), low, high)

    return env_action


# ------------------------------------------------------------------------------ checking an export
def _check_observations(obs_dim: int, n: int = CHECK_OBSERVATIONS) -> np.ndarray:
    return np.clip(np.random.default_rng(0).normal(0.0, 2.0, (n, obs_dim)), -10.0, 10.0).astype(np.float32)


def _check_matches_agent(act: Callable[[np.ndarray], np.ndarray], agent: "Agent", what: str) -> None:
    """RuntimeError (a bug in softac export, not a user error) if `act` and the agent act differently."""
    obs = _check_observations(agent.algorithm.obs_dim)
    got, want = np.asarray(act(obs)), np.asarray(agent.act(obs, deterministic=True))
    spec = agent.action_spec
    if spec.discrete:
        ok = got.shape == want.shape and np.array_equal(got, want)
    else:
        scale = np.maximum(np.asarray(spec.high, np.float64) - np.asarray(spec.low, np.float64), 1.0)
        ok = got.shape == want.shape and bool(np.all(np.abs(got - want) <= CHECK_TOLERANCE * scale))
    if not ok:
        raise RuntimeError(f"The {what} export of {agent.run_dir} does not reproduce the agent's actions "
                           "(a bug in softac export; please report it).")


# ------------------------------------------------------------------------------ the two formats
def npz_bytes(agent: "Agent") -> bytes:
    """The npz file of `agent`'s policy, checked against the agent."""
    import io

    policy = numpy_policy_of(agent)
    _check_matches_agent(policy, agent, "npz")
    buffer = io.BytesIO()
    policy.save(buffer)
    return buffer.getvalue()


def _require_onnx() -> None:
    import importlib

    try:
        for name in ("jax2onnx", "onnx", "onnxruntime"):
            importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or "one of them"
        raise SoftacError(f"--format onnx needs jax2onnx, onnx and onnxruntime, and {missing} is not installed; "
                          f"install them with: {INSTALL_HINT}") from None


def onnx_bytes(agent: "Agent") -> bytes:
    """The ONNX model of `agent`'s policy (module docstring), checked in onnxruntime against the agent."""
    _require_onnx()
    import onnxruntime
    from jax2onnx import to_onnx

    obs_dim = agent.algorithm.obs_dim
    model = to_onnx(env_action_function(agent), [("B", obs_dim)], model_name="softac_policy", opset=ONNX_OPSET,
                    input_names=["obs"], output_names=["action"])
    model.doc_string = (f"softac {agent.config.algo} policy of {agent.config.env}: obs float32 [B, {obs_dim}] -> "
                        "the environment's deterministic action")
    for key, value in {ONNX_MARK: "1", "softac.env": agent.config.env, "softac.algo": agent.config.algo}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])

    def run(obs: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run(None, {"obs": obs[:1]})[0], session.run(None, {"obs": obs[1:]})[0]])

    _check_matches_agent(run, agent, "ONNX")  # batches of 1 and of many: the batch axis is dynamic
    return data


# ------------------------------------------------------------------------------ the output file
def _is_checkpoint_dir(directory: Path) -> bool:
    from softac.checkpoint import CHECKPOINT_DIR

    named = directory.name == CHECKPOINT_DIR or directory.name.startswith(f".{CHECKPOINT_DIR}.")
    return named and (directory.parent / CONFIG_NAME).is_file()


def _is_softac_export(path: Path) -> bool:
    """True for a file written by an earlier `softac export` (an npz policy, or an ONNX model marked ONNX_MARK)."""
    with contextlib.suppress(Exception):
        NumpyPolicy.load(path)
        return True
    with contextlib.suppress(Exception):
        import onnx

        return any(p.key == ONNX_MARK for p in onnx.load(str(path), load_external_data=False).metadata_props)
    return False


def check_out_path(out: str | Path) -> Path:
    """`out` as a Path if an export may be written there; SoftacError for a directory, a path under a file, a
    path inside a run's checkpoint, or an existing file of a run directory that is not an earlier export."""
    out = Path(out)
    if out.is_dir():
        raise SoftacError(f"{out} is a directory; give a file name such as {out / 'policy.onnx'}.")
    parent = out.absolute().parent
    for directory in (parent, *parent.parents):
        if directory.exists() and not directory.is_dir():
            raise SoftacError(f"Cannot write {out}: {directory} is not a directory.")
        if _is_checkpoint_dir(directory):
            raise SoftacError(f"Refusing to write {out} inside the checkpoint directory {directory}; "
                              "give a path outside it.")
    if out.exists() and (parent / CONFIG_NAME).is_file() and not _is_softac_export(out):
        raise SoftacError(f"Refusing to overwrite {out}, a file of the softac run {parent} that is not an "
                          "earlier export; give another path.")
    return out


def write_export(out: Path, data: bytes) -> None:
    """Write `data` to `out` atomically (a temporary file beside it, renamed over it); an OS error is a
    SoftacError naming the reason."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_durably(tmp, data)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as exc:
        raise SoftacError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def export_npz(agent: "Agent", out: str | Path) -> Path:
    """Write `agent`'s policy to `out` as an npz file for NumpyPolicy; returns the path."""
    out = check_out_path(out)
    write_export(out, npz_bytes(agent))
    return out


def export_onnx(agent: "Agent", out: str | Path) -> Path:
    """Write `agent`'s policy to `out` as an ONNX model; returns the path."""
    _require_onnx()
    out = check_out_path(out)
    write_export(out, onnx_bytes(agent))
    return out


def describe(agent: "Agent") -> str:
    """One line: what the exported policy maps to what."""
    spec, obs_dim = agent.action_spec, agent.algorithm.obs_dim
    if spec.discrete:
        actions = f"action [B] in {{{spec.start}, ..., {spec.start + spec.dim - 1}}}"
    else:
        actions = f"action [B, {spec.dim}] in [{np.min(spec.low):g}, {np.max(spec.high):g}]"
    flattened = " (flattened as by gymnasium.spaces.flatten)" if getattr(agent.config, "flatten_obs", False) else ""
    return f"{agent.config.algo} policy of {agent.config.env}: obs [B, {obs_dim}]{flattened} -> {actions}"


class Exported(NamedTuple):
    """What `export_policy` wrote: the file, and one line saying what the policy in it maps to what."""

    path: Path
    summary: str


def export_policy(run_dir: str | Path, fmt: str, out: str | Path) -> Exported:
    """`softac export`: write the deterministic policy of `run_dir`'s latest checkpoint to `out` in format
    `fmt` ("onnx" or "npz"). SoftacError for a bad run directory, output path or format, or a missing
    optional dependency (all checked before the conversion), or an output path the OS refuses."""
    from softac.evaluate import load_agent

    if fmt not in FORMATS:
        raise SoftacError(f"Unknown export format {fmt!r}; choose {' or '.join(FORMATS)}.")
    if fmt == "onnx":
        _require_onnx()
    out = check_out_path(out)
    agent = load_agent(run_dir)
    write_export(out, onnx_bytes(agent) if fmt == "onnx" else npz_bytes(agent))
    return Exported(out, describe(agent))
