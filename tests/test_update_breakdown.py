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


def load_without_products():
    path = SCRIPT.parent / "update_without_products.py"
    spec = importlib.util.spec_from_file_location("update_without_products", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_update_without_products_keeps_every_other_equation_and_its_outputs():
    """benchmarks/update_without_products.py: the rewritten update of a CrossQ agent (a policy-delay cond inside
    the scan, Batch Renormalization's custom VJP) holds no dot_general, keeps the other equations (its
    exponentials, the cond, the scan) and returns arrays of the update's shapes and dtypes."""
    import jax
    import numpy as np

    script = load_without_products()
    agent = make_agent(SACConfig.build(algo="crossq", env="Pendulum-v1", critic_hidden_sizes=(32, 32),
                                       hidden_sizes=(32, 32), batch_size=16), 3, 1)
    timer = UpdateTimer(agent)
    fn = jax.vmap(agent.update_many, in_axes=(0, 0, None))
    closed = jax.make_jaxpr(fn)(timer.state, timer.batches, np.int32(0))
    rewritten = script.without_products(closed)

    def names(jaxpr):
        found = []
        for eqn in jaxpr.eqns:
            found.append(eqn.primitive.name)
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else [value]:
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        found += names(sub.jaxpr)
        return found

    before, after = names(closed.jaxpr), names(rewritten.jaxpr)
    assert "dot_general" in before and "dot_general" not in after
    for primitive in ("exp", "cond", "scan", "tanh"):
        assert primitive in before and primitive in after, primitive
    assert len(after) >= len(before) - before.count("dot_general")  # nothing else dropped
    assert [v.aval for v in rewritten.jaxpr.outvars] == [v.aval for v in closed.jaxpr.outvars]
    assert script.WithoutProductsTimer(timer, agent).seconds_per_update(2) > 0
