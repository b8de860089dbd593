"""A trained softac policy as numpy arrays: the npz file format and its forward pass (`NumpyPolicy`).

This file is self-contained: it imports only numpy and the standard library (no JAX, flax or
softac), so it can be copied alone to a deployment machine that has numpy and nothing else:

    from numpy_policy import NumpyPolicy          # or: from softac.numpy_policy import NumpyPolicy
    policy = NumpyPolicy.load("policy.npz")       # written by `softac export RUN_DIR --format npz`
    action = policy(obs)                          # obs [obs_dim] -> the environment's action
    actions = policy(batch_of_obs)                # [B, obs_dim] -> [B, action_dim] (Box) or [B] (Discrete)

The policy is the deterministic one softac evaluates with, in the environment's action units:

    Box [low, high]:  a = clip(low + (tanh(mu(s)) + 1) (high - low) / 2, low, high)
    Discrete(n, start):  a = argmax_i logits_i(s) + start

where mu(s) (the mean half of the actor's output; the log-std half is not needed) and logits(s) are
the actor network: a sequence of layers applied in order, computed in float32 as in training.

npz file format (version 1); every entry is a numpy array (no pickled objects; load with
allow_pickle=False):

| key | holds |
| --- | --- |
| `format`, `version` | "softac.numpy_policy", 1 |
| `obs_dim` | the observation size |
| `num_layers` | L; layer i (0 <= i < L) is `layer{i}.kind` and its arrays `layer{i}.<name>` |
| `head` | "squashed_gaussian" (Box actions) or "categorical" (Discrete actions) |
| `action_low`, `action_high` | the Box bounds [action_dim] (squashed_gaussian) |
| `action_start` | the first action of the Discrete space (categorical) |
| `env`, `algo` | the Gymnasium id and algorithm the policy was trained with (information only) |

Layer kinds, x the input [..., in]:

| kind | arrays | computes |
| --- | --- | --- |
| `dense` | kernel [in, out], bias [out] | x @ kernel + bias |
| `relu` | (none) | max(x, 0) |
| `batch_norm` | mean, var, scale, bias [in], epsilon [] | (x - mean) / sqrt(var + epsilon) * scale + bias |
| `shift_l2` | shift [], epsilon [] | l2([x, shift]): the constant appended as one more feature, then L2-normalised [..., in + 1] |
| `l2_normalize` | epsilon [] | l2(x) = x / max(norm(x), epsilon), norm(x) the L2 norm over the last axis |
| `lerp` | kernel1 [in, hidden], offset [], kernel2 [hidden, in], alpha [in], epsilon [] | l2(x + alpha (l2((max(x @ kernel1, 0) + offset) @ kernel2) - x)) |

`batch_norm` is batch (re)normalisation in evaluation mode, with the running statistics (mean, var)
accumulated in training: CrossQ's Batch Renormalization layers, the first of which normalises the
observation; with scale 1 and bias 0 it is a running observation normalisation (SimbaV2's). Observation
preprocessing, if a policy has any, is part of the layers. `shift_l2`, `l2_normalize` and `lerp` are
SimbaV2's hyperspherical layers: its embedding (shift_l2, dense, l2_normalize) and its residual blocks,
which interpolate between x and the block's output y = l2((max(x @ kernel1, 0) + offset) @ kernel2) and
project the result back onto the unit sphere.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO, Optional, Union

import numpy as np

FORMAT = "softac.numpy_policy"
VERSION = 1
HEADS = ("squashed_gaussian", "categorical")

# The arrays of each layer kind, in the order the table above lists them.
LAYER_ARRAYS = {"dense": ("kernel", "bias"), "relu": (), "batch_norm": ("mean", "var", "scale", "bias", "epsilon"),
                "shift_l2": ("shift", "epsilon"), "l2_normalize": ("epsilon",),
                "lerp": ("kernel1", "offset", "kernel2", "alpha", "epsilon")}


def l2_normalize(x: np.ndarray, epsilon: np.ndarray) -> np.ndarray:
    """x / max(||x||_2, epsilon) over the last axis."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), epsilon)


def apply_layer(layer: dict, x: np.ndarray) -> np.ndarray:
    """One layer applied to x [..., in] (float32):

    dense:       x @ kernel + bias
    relu:        max(x, 0)
    batch_norm:  (x - mean) / sqrt(var + epsilon) * scale + bias, mean and var the running statistics
                 (Batch Renormalization in evaluation mode; CrossQ's epsilon is 1e-3)
    shift_l2:    l2([x, shift]), the constant appended as a last feature
    l2_normalize: l2(x) = x / max(||x||_2, epsilon)
    lerp:        l2(x + alpha (l2((max(x @ kernel1, 0) + offset) @ kernel2) - x))
    """
    kind = layer["kind"]
    if kind == "dense":
        return x @ layer["kernel"] + layer["bias"]
    if kind == "relu":
        return np.maximum(x, np.float32(0.0))
    if kind == "batch_norm":
        return (x - layer["mean"]) / np.sqrt(layer["var"] + layer["epsilon"]) * layer["scale"] + layer["bias"]
    if kind == "shift_l2":
        constant = np.full(x.shape[:-1] + (1,), layer["shift"], np.float32)
        return l2_normalize(np.concatenate([x, constant], axis=-1), layer["epsilon"])
    if kind == "l2_normalize":
        return l2_normalize(x, layer["epsilon"])
    if kind == "lerp":
        inner = np.maximum(x @ layer["kernel1"], np.float32(0.0)) + layer["offset"]
        update = l2_normalize(inner @ layer["kernel2"], layer["epsilon"])
        return l2_normalize(x + layer["alpha"] * (update - x), layer["epsilon"])
    raise ValueError(f"Unknown layer kind {kind!r}; this file reads {', '.join(LAYER_ARRAYS)}.")


class NumpyPolicy:
    """The deterministic policy of a trained softac run, evaluated with numpy alone (see the module docstring).

    layers: dicts {"kind": one of LAYER_ARRAYS, <array name>: array, ...}, applied in order to the
    observation; head: "squashed_gaussian" (then action_low, action_high: the Box bounds) or
    "categorical" (then action_start: the first action of the Discrete space).
    """

    def __init__(self, layers: list[dict], head: str, obs_dim: int, action_low: Optional[np.ndarray] = None,
                 action_high: Optional[np.ndarray] = None, action_start: int = 0, env: str = "", algo: str = ""):
        if head not in HEADS:
            raise ValueError(f"Unknown policy head {head!r}; this file reads {', '.join(HEADS)}.")
        for layer in layers:
            if layer.get("kind") not in LAYER_ARRAYS:
                raise ValueError(f"Unknown layer kind {layer.get('kind')!r}; this file reads {', '.join(LAYER_ARRAYS)}.")
        self.layers = [{"kind": layer["kind"], **{name: np.asarray(layer[name], np.float32)
                                                 for name in LAYER_ARRAYS[layer["kind"]]}} for layer in layers]
        self.head = head
        self.obs_dim = int(obs_dim)
        if head == "squashed_gaussian":
            if action_low is None or action_high is None:
                raise ValueError("A squashed_gaussian policy needs action_low and action_high.")
            self.action_low, self.action_high = np.asarray(action_low), np.asarray(action_high)
        else:
            self.action_low = self.action_high = None
        self.action_start = int(action_start)
        self.env, self.algo = env, algo

    # ------------------------------------------------------------------------------ forward pass
    def actor_output(self, obs: np.ndarray) -> np.ndarray:
        """The actor network's output for obs [..., obs_dim] (float32): for squashed_gaussian the pre-squash
        mean mu(s) and the (unclipped) log-std side by side, [..., 2 action_dim]; for categorical the
        logits [..., n]."""
        x = np.asarray(obs, np.float32)
        if x.shape[-1:] != (self.obs_dim,):
            raise ValueError(f"Expected observations [..., {self.obs_dim}], got shape {x.shape}.")
        for layer in self.layers:
            x = apply_layer(layer, x)
        return x

    def __call__(self, obs: np.ndarray) -> Union[np.ndarray, int]:
        """The environment's action for obs [obs_dim], or actions for obs [B, obs_dim].

        Box:      clip(low + (tanh(mu(s)) + 1) (high - low) / 2, low, high), [action_dim] or [B, action_dim]
        Discrete: argmax_i logits_i(s) + start, an int for one observation, int64 [B] for a batch
        """
        out = self.actor_output(obs)
        if self.head == "categorical":
            index = np.argmax(out, axis=-1).astype(np.int64) + self.action_start
            return int(index) if index.ndim == 0 else index
        action_dim = self.action_low.shape[-1]
        squashed = np.tanh(out[..., :action_dim])  # the mean half; the log-std half is unused
        low, high = self.action_low, self.action_high
        return np.clip(low + 0.5 * (squashed + 1.0) * (high - low), low, high)

    act = __call__

    # ------------------------------------------------------------------------------ the npz file
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The entries of the npz file (module docstring)."""
        arrays: dict[str, Any] = {"format": np.array(FORMAT), "version": np.array(VERSION),
                                  "obs_dim": np.array(self.obs_dim), "num_layers": np.array(len(self.layers)),
                                  "head": np.array(self.head), "env": np.array(self.env), "algo": np.array(self.algo)}
        for i, layer in enumerate(self.layers):
            arrays[f"layer{i}.kind"] = np.array(layer["kind"])
            for name in LAYER_ARRAYS[layer["kind"]]:
                arrays[f"layer{i}.{name}"] = layer[name]
        if self.head == "squashed_gaussian":
            arrays["action_low"], arrays["action_high"] = self.action_low, self.action_high
        else:
            arrays["action_start"] = np.array(self.action_start)
        return arrays

    def save(self, file: Union[str, os.PathLike, BinaryIO]) -> None:
        """Write the npz file to a path or a binary file object (a path is written as given, no suffix added)."""
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:
                np.savez(f, **self.to_arrays())
        else:
            np.savez(file, **self.to_arrays())

    @classmethod
    def load(cls, file: Union[str, os.PathLike, BinaryIO, bytes]) -> "NumpyPolicy":
        """Read an npz file written by `save` (or `softac export --format npz`); never unpickles anything.

        ValueError if the file is not a softac policy of a version this file reads.
        """
        if isinstance(file, bytes):
            file = io.BytesIO(file)
        with np.load(file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        if str(arrays.get("format", "")) != FORMAT:
            raise ValueError(f"Not a softac policy file (its 'format' entry is not {FORMAT!r}).")
        if int(arrays["version"]) != VERSION:
            raise ValueError(f"softac policy file version {int(arrays['version'])}; this file reads version {VERSION}.")
        layers = []
        for i in range(int(arrays["num_layers"])):
            kind = str(arrays[f"layer{i}.kind"])
            layers.append({"kind": kind, **{name: arrays[f"layer{i}.{name}"] for name in LAYER_ARRAYS.get(kind, ())}})
        head = str(arrays["head"])
        return cls(layers, head, int(arrays["obs_dim"]), action_low=arrays.get("action_low"),
                   action_high=arrays.get("action_high"), action_start=int(arrays.get("action_start", 0)),
                   env=str(arrays.get("env", "")), algo=str(arrays.get("algo", "")))

    def __repr__(self) -> str:
        kinds = "-".join(layer["kind"] for layer in self.layers)
        return f"NumpyPolicy({self.algo or '?'} on {self.env or '?'}: {kinds} -> {self.head})"
