"""DroQ's critic (Hiraoka et al., ICLR 2022; docs/algorithms.md, "DroQ (Hiraoka et al., ICLR 2022)"): an MLP whose
hidden layers are Dense -> Dropout -> LayerNorm -> ReLU (SBX's order), for `softac.networks.critic_ensemble`."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from softac.layers import Dropout, LayerNorm
from softac.networks import dense


class DropoutCritic(nn.Module):
    """Q_Dr(s, a) -> [...]: per hidden layer h <- relu(LayerNorm(Dropout(W h + b))), then a linear output.

    Dropout is always on (DroQ trains with it and never evaluates the critics otherwise): every application
    needs a 'dropout' PRNG key (`rngs={"dropout": key}`); a rate of 0 is no dropout, and `layer_norm` False
    leaves the LayerNorm out. Both layers are `softac.layers`' (flax's maths and parameter names, 2.3x faster
    in this update on a CPU: docs/speed.md).
    """

    hidden_sizes: Sequence[int]
    dropout_rate: float = 0.01
    layer_norm: bool = True
    initialization: str = "flax"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        for width in self.hidden_sizes:
            x = dense(width, x.shape[-1], self.initialization)(x)
            x = Dropout(rate=self.dropout_rate)(x)
            if self.layer_norm:
                x = LayerNorm()(x)
            x = nn.relu(x)
        return dense(1, x.shape[-1], self.initialization)(x)[..., 0]
