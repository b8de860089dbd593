"""CrossQ's actor as numpy layers (softac/numpy_policy.py's format): Batch Renormalization in evaluation mode."""

from __future__ import annotations

import numpy as np

from softac.errors import SoftacError
from softac.export_layers import dense_layer, numbered_modules


def normalised_mlp_layers(params: dict, stats: dict, num_hidden: int, epsilon: float) -> list[dict]:
    """softac.algos.crossq.networks.NormalisedMLP in evaluation mode: batch_norm of the input, (dense, relu,
    batch_norm) per hidden layer, then the output dense layer; each batch_norm with its running statistics."""
    dense = numbered_modules(params, "Dense")
    norm_names = [n for n in params if n.startswith("BatchRenorm_")]
    if len(dense) != num_hidden + 1 or len(norm_names) != num_hidden + 1:
        raise SoftacError(f"The actor has {len(dense)} dense and {len(norm_names)} normalisation layers, "
                          f"expected {num_hidden + 1} of each.")

    def norm(i: int) -> dict:
        p, s = params[f"BatchRenorm_{i}"], stats[f"BatchRenorm_{i}"]
        return {"kind": "batch_norm", "mean": np.asarray(s["mean"]), "var": np.asarray(s["var"]),
                "scale": np.asarray(p["scale"]), "bias": np.asarray(p["bias"]), "epsilon": np.float32(epsilon)}

    layers = [norm(0)]
    for i, p in enumerate(dense[:-1]):
        layers += [dense_layer(p), {"kind": "relu"}, norm(i + 1)]
    return layers + [dense_layer(dense[-1])]
