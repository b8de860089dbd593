"""SimbaV2's actor as numpy layers (softac/numpy_policy.py's format): the observation normalisation, the
hyperspherical encoder and the two linear heads folded into one dense layer. Every learnable Scaler is
folded into the kernel before it (x @ W * s = x @ (W diag s)); the heads have no nonlinearity, so
s * (h @ W1) @ W2 + b is one dense layer (h @ (W1 diag(s) W2) + b)."""

from __future__ import annotations

import math

import numpy as np

from softac.algos.simbav2.networks import EXPANSION, L2_EPS, OBS_EPS, scaler_gain
from softac.errors import SoftacError


def _gained_kernel(dense: dict, scaler: dict, init: float, scale: float) -> np.ndarray:
    """W diag(s): the kernel of a HyperDense followed by a Scaler."""
    return np.asarray(dense["kernel"]) * np.asarray(scaler_gain(scaler, init, scale))[None, :]


def _head_kernel_and_bias(head: dict) -> tuple[np.ndarray, np.ndarray]:
    """A HyperLinearHead (s * (h @ W1)) @ W2 + b as (W1 diag(s) W2, b)."""
    inner = _gained_kernel(head["HyperDense_0"], head["Scaler_0"], 1.0, 1.0)
    return inner @ np.asarray(head["HyperDense_1"]["kernel"]), np.asarray(head["bias"])


def simbav2_actor_layers(params: dict, obs_stats: dict, num_blocks: int, hidden_dim: int, shift: float,
                         normalize_observations: bool) -> list[dict]:
    """softac.algos.simbav2.networks.SimbaV2Actor as layers: [batch_norm (the observation's running mean and
    variance, scale 1, bias 0)], shift_l2, dense, l2_normalize, one lerp per block, and the dense of both heads:
    mean and the log-std head's pre-tanh output side by side (NumpyPolicy uses the mean half)."""
    encoder = params["HyperEncoder_0"]
    blocks = [encoder[f"HyperLERPBlock_{i}"] for i in range(num_blocks) if f"HyperLERPBlock_{i}" in encoder]
    if len(blocks) != num_blocks or f"HyperLERPBlock_{num_blocks}" in encoder:
        raise SoftacError(f"The actor's encoder does not have the {num_blocks} blocks its config says.")
    layers: list[dict] = []
    if normalize_observations:
        mean = np.asarray(obs_stats["mean"], np.float32)
        layers.append({"kind": "batch_norm", "mean": mean, "var": np.asarray(obs_stats["var"], np.float32),
                       "scale": np.ones_like(mean), "bias": np.zeros_like(mean), "epsilon": np.float32(OBS_EPS)})
    gain = math.sqrt(2.0 / hidden_dim)
    embedder = encoder["HyperEmbedder_0"]
    kernel = _gained_kernel(embedder["HyperDense_0"], embedder["Scaler_0"], gain, gain)
    layers += [{"kind": "shift_l2", "shift": np.float32(shift), "epsilon": np.float32(L2_EPS)},
               {"kind": "dense", "kernel": kernel, "bias": np.zeros(kernel.shape[1], np.float32)},
               {"kind": "l2_normalize", "epsilon": np.float32(L2_EPS)}]
    inner_gain = gain / math.sqrt(EXPANSION)
    for block in blocks:
        layers.append({"kind": "lerp",
                       "kernel1": _gained_kernel(block["HyperDense_0"], block["Scaler_0"], inner_gain, inner_gain),
                       "offset": np.float32(L2_EPS), "kernel2": np.asarray(block["HyperDense_1"]["kernel"]),
                       "alpha": np.asarray(scaler_gain(block["Scaler_1"], 1.0 / (num_blocks + 1),
                                                       1.0 / math.sqrt(hidden_dim))),
                       "epsilon": np.float32(L2_EPS)})
    mean_kernel, mean_bias = _head_kernel_and_bias(params["HyperLinearHead_0"])
    std_kernel, std_bias = _head_kernel_and_bias(params["HyperLinearHead_1"])
    layers.append({"kind": "dense", "kernel": np.concatenate([mean_kernel, std_kernel], axis=1),
                   "bias": np.concatenate([mean_bias, std_bias])})
    return layers
