"""Weight initialisation: flax's default and torch.nn.Linear's, checked against their definitions."""

import math

import jax
import numpy as np
import pytest

from softac.algos.registry import REGISTRY, make_agent
from tests.conftest import tiny_config


def dense_layers(params):
    """(kernel, bias) of every dense layer in a parameter tree (ensembles: one per critic)."""
    found = []

    def visit(tree):
        if isinstance(tree, dict) and "kernel" in tree:
            kernel, bias = np.asarray(tree["kernel"]), np.asarray(tree["bias"])
            if kernel.ndim == 3:  # an ensemble's leading critic axis
                found.extend(zip(kernel, bias))
            else:
                found.append((kernel, bias))
        elif isinstance(tree, dict):
            for value in tree.values():
                visit(value)

    visit(jax.device_get(params))
    return found


#: Algorithms whose networks have an initialisation of their own (network_init does not apply): SimbaV2's
#: orthogonal kernels projected onto the unit sphere.
OWN_INITIALISATION = {"simbav2"}


@pytest.mark.parametrize("algo", sorted(set(REGISTRY) - OWN_INITIALISATION))
def test_pytorch_init_is_uniform_in_one_over_sqrt_fan_in_for_kernels_and_biases(tmp_path, algo):
    cfg = tiny_config(tmp_path, algo=algo, env="Pendulum-v1", hidden_sizes=(256, 256), critic_hidden_sizes=(256, 256),
                      network_init="pytorch")
    agent = make_agent(cfg, 3, 1)
    state = agent.init(jax.random.PRNGKey(0))
    layers = dense_layers({"actor": state.actor_params, "critic": state.critic_params})
    assert len(layers) >= 9  # 3 actor layers, 3 per critic
    for kernel, bias in layers:
        bound = 1.0 / math.sqrt(kernel.shape[0])
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        if kernel.size >= 10_000:  # U(-b, b) has std b / sqrt(3)
            assert np.std(kernel) == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_flax_init_is_lecun_normal_with_zero_biases(tmp_path):
    agent = make_agent(tiny_config(tmp_path, algo="sac", hidden_sizes=(256, 256), network_init="flax"), 3, 1)
    for kernel, bias in dense_layers(agent.init(jax.random.PRNGKey(0)).critic_params):
        assert np.all(bias == 0)
        if kernel.size >= 10_000:  # lecun normal: std 1/sqrt(fan_in) (truncated normal, rescaled)
            assert np.std(kernel) == pytest.approx(1.0 / math.sqrt(kernel.shape[0]), rel=0.05)


def test_an_unknown_init_is_refused(tmp_path):
    from softac.errors import SoftacError

    with pytest.raises(SoftacError, match="network_init must be 'flax' or 'pytorch'"):
        tiny_config(tmp_path, network_init="xavier")


def test_the_default_init_is_pytorch_for_sac_and_tqc_and_flax_for_the_others(tmp_path):
    # SAC and TQC start as SB3 and sb3-contrib do (docs/choosing.md, "Initialisation"); the others as SBX.
    for name in REGISTRY:
        cfg = tiny_config(tmp_path, algo=name).with_algorithm_defaults()
        assert cfg.network_init == ("pytorch" if name in ("sac", "tqc") else "flax"), name
    for name in ("sac", "tqc"):
        assert tiny_config(tmp_path, algo=name, network_init="flax").with_algorithm_defaults().network_init == "flax"
