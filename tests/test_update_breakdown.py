"""benchmarks/update_breakdown.py's count of an update's matrix products (ProductsTimer), against a count by
hand of SAC v2's dense layers."""

import importlib.util
from pathlib import Path

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.throughput import UpdateTimer

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "update_breakdown.py"


def load_script():
    spec = importlib.util.spec_from_file_location("update_breakdown", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_products_of_a_sac_update_are_its_dense_layers_passes():
    """HalfCheetah-v5 shapes (obs 17, action 6), batch 256, 256-wide layers; a pass of a layer over the batch is
    2 B in out FLOPs. Per critic: the critic loss's forward, weight gradients and input gradients of layers 2-3
    (the first layer's input gradient is dead code), the target's forward, the actor loss's forward and input
    gradients of every layer (down to the action), never the critic's weight gradients there. The actor: the next
    action's and the actor loss's forward, the weight gradients and the input gradients of layers 2-3."""
    breakdown = load_script()
    agent = make_agent(SACConfig.build(algo="sac", env="HalfCheetah-v5"), 17, 6)
    timer = UpdateTimer(agent)
    flops = sum(breakdown.dot_flops(*dot[:3]) for dot in breakdown.ProductsTimer._dots(agent, timer))
    B = 256
    layer = lambda fan_in, fan_out: 2 * B * fan_in * fan_out
    c1, c2, c3 = layer(23, 256), layer(256, 256), layer(256, 1)
    a1, a2, a3 = layer(17, 256), layer(256, 256), layer(256, 12)
    critic = c1 + c2 + c3
    per_critic = (critic + critic + c2 + c3) + critic + (critic + critic)
    actor = 3 * (a1 + a2 + a3) + a2 + a3
    assert flops == 2 * per_critic + actor
