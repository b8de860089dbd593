"""Policies as numpy layer lists (the format of softac/numpy_policy.py): the pieces every algorithm's
`policy_layers` is built from. An agent knows its own network and returns its layers; `softac.export`
asks for them and knows no algorithm."""

from __future__ import annotations

import numpy as np

from softac.errors import SoftacError


def dense_layer(params: dict) -> dict:
    """A flax Dense layer's parameters as the `dense` layer kind: x @ kernel + bias."""
    return {"kind": "dense", "kernel": np.asarray(params["kernel"]), "bias": np.asarray(params["bias"])}


def numbered_modules(params: dict, prefix: str) -> list[dict]:
    """The modules `prefix`_0, `prefix`_1, ... of a flax parameter dict, in order."""
    names = sorted((n for n in params if n.startswith(prefix + "_")), key=lambda n: int(n.rsplit("_", 1)[1]))
    return [params[n] for n in names]


def mlp_layers(params: dict, num_hidden: int) -> list[dict]:
    """softac.networks.MLP: (dense, relu) per hidden layer, then the output dense layer."""
    dense = numbered_modules(params, "Dense")
    if len(dense) != num_hidden + 1:
        raise SoftacError(f"The actor has {len(dense)} dense layers, expected {num_hidden + 1}.")
    layers: list[dict] = []
    for p in dense[:-1]:
        layers += [dense_layer(p), {"kind": "relu"}]
    return layers + [dense_layer(dense[-1])]
