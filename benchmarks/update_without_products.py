"""Is an update slower than its parts? The update as trained, its matrix products alone, and the update with
its matrix products taken out, timed in interleaved rounds in one process.

    python benchmarks/update_without_products.py [--algos sac,tqc,droq,redq,crossq,simbav2] [--rounds 5] [--repeats 30]

For each algorithm (its own defaults, HalfCheetah-v5 shapes, 1 seed; CrossQ's critics 256 wide and SimbaV2's 128,
as in update_breakdown.py):
- update: the trainer's jitted update (`softac.throughput.UpdateTimer`), ms per update;
- products: every dot_general of the update alone, on random operands (update_breakdown.py's `ProductsTimer`);
- without products: the same update, jaxpr and all (the scan of the env step's updates, every loss, activation,
  normalisation, sampling step, optimiser and Polyak step), with every dot_general replaced by a stand-in that
  reads nothing and writes its result (`without_products`): the stand-in's operands and result are materialised
  behind `jax.lax.optimization_barrier`, so XLA can neither drop the operands' producers nor fold the constant
  result into its consumers. The stand-ins cost one write of each product's result, which the products'
  own timing counts too;
- (products + without products) / update. About 100%: the update runs as fast as its two parts run apart, and
  only less element-wise work or faster products make it faster. Well below 100%: the parts lose time together
  (a layout copy, a fusion that recomputes a producer). Above 100%: the stand-ins changed how XLA compiles the
  element-wise work (DroQ's, whose LayerNorm sums are products with a ones vector, is the case measured), and
  "without products" does not measure it.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.throughput import UpdateTimer

# Call-like primitives whose body is evaluated in place (their custom derivative rules are not needed: the
# update's jaxpr is already differentiated).
INLINED = ("jit", "pjit", "closed_call", "core_call", "custom_vjp_call", "custom_jvp_call", "remat", "checkpoint")


def stand_in_product(lhs: jax.Array, rhs: jax.Array, aval) -> jax.Array:
    """An array of the product's shape and dtype that depends on both operands but computes nothing of them."""
    lhs, rhs = jax.lax.optimization_barrier((lhs, rhs))
    scalar = (lhs.reshape(-1)[0] * 0 + rhs.reshape(-1)[0] * 0).astype(aval.dtype)
    return jax.lax.optimization_barrier(jnp.broadcast_to(scalar, aval.shape))


def _evaluate(jaxpr, consts, args) -> list:
    """Evaluate `jaxpr` with every dot_general, in sub-jaxprs too, replaced by `stand_in_product`."""
    env = {}
    read = lambda v: v.val if isinstance(v, Literal) else env[v]
    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "dot_general":
            outs = [stand_in_product(*invals, eqn.outvars[0].aval)]
        elif name in INLINED:
            body = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
            body = body if isinstance(body, ClosedJaxpr) else ClosedJaxpr(body, ())
            outs = _evaluate(body.jaxpr, body.consts, invals)
        else:
            params = dict(eqn.params)
            if name == "scan":
                params["jaxpr"] = without_products(params["jaxpr"])
            elif name == "cond":
                params["branches"] = tuple(without_products(b) for b in params["branches"])
            elif name == "while":
                params["cond_jaxpr"] = without_products(params["cond_jaxpr"])
                params["body_jaxpr"] = without_products(params["body_jaxpr"])
            elif any(isinstance(v, ClosedJaxpr) for v in params.values()):
                raise NotImplementedError(f"a {name} equation holds a jaxpr this script does not rewrite")
            outs = eqn.primitive.bind(*invals, **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def without_products(closed: ClosedJaxpr) -> ClosedJaxpr:
    """`closed` with every dot_general replaced by a stand-in of the same shape (the same inputs and outputs)."""
    return jax.make_jaxpr(lambda *args: _evaluate(closed.jaxpr, closed.consts, args))(
        *[v.aval for v in closed.jaxpr.invars])


class WithoutProductsTimer:
    """The update of `timer` (a `UpdateTimer`) with its products replaced by stand-ins, called as `timer` calls
    it (the env step's updates in one call, the update index advancing), on a copy of its initial state."""

    def __init__(self, timer: UpdateTimer, agent):
        fn = jax.vmap(agent.update_many, in_axes=(0, 0, None))
        leaves, tree = jax.tree_util.tree_flatten((timer.state, timer.batches, np.int32(0)))
        self.leaves = [jnp.array(x, copy=True) if isinstance(x, jax.Array) else x for x in leaves]
        closed = jax.make_jaxpr(lambda *xs: fn(*jax.tree_util.tree_unflatten(tree, xs)))(*self.leaves)
        self.update = jax.jit(lambda *xs: _evaluate(closed.jaxpr, closed.consts, xs))
        self.updates_per_call = timer.updates_per_call
        self.calls = 0
        self.seconds_per_update(1)

    def seconds_per_update(self, updates: int) -> float:
        calls = max(1, -(-updates // self.updates_per_call))
        start = time.perf_counter()
        for _ in range(calls):
            self.leaves[-1] = np.int32(self.calls * self.updates_per_call)
            out = self.update(*self.leaves)
            self.calls += 1
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / (calls * self.updates_per_call)


def _products_timer():
    path = Path(__file__).resolve().parent / "update_breakdown.py"
    spec = importlib.util.spec_from_file_location("update_breakdown", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ProductsTimer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--algos", default="sac,tqc,droq,redq,crossq,simbav2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--crossq-width", type=int, default=256, help="CrossQ's critic width (authors' 2048)")
    parser.add_argument("--simbav2-width", type=int, default=128, help="SimbaV2's critic width (authors' 512)")
    args = parser.parse_args()
    env = make_env(args.env)
    obs_dim, action_dim = space_dims(env)
    env.close()
    widths = {"crossq": dict(critic_hidden_sizes=(args.crossq_width,) * 2),
              "simbav2": dict(critic_hidden_dim=args.simbav2_width)}
    products_timer = _products_timer()
    timers = {}
    for algo in args.algos.split(","):
        agent = make_agent(SACConfig.build(algo=algo, env=args.env, **widths.get(algo, {})), obs_dim, action_dim)
        update = UpdateTimer(agent)
        timers[algo] = (update, products_timer(update, agent), WithoutProductsTimer(update, agent))
    times = {algo: ([], [], []) for algo in timers}
    for _ in range(args.rounds):
        for algo, (update, products, rest) in timers.items():
            times[algo][0].append(1.0 / update.updates_per_second(args.repeats))
            times[algo][1].append(products.seconds_per_update(args.repeats))
            times[algo][2].append(rest.seconds_per_update(args.repeats))
    print(f"{args.env}, 1 seed, medians of {args.rounds} interleaved rounds; ms per update")
    print(f"{'algorithm':10s} {'update':>8s} {'products':>9s} {'without products':>17s} {'sum / update':>13s}")
    for algo, (update, products, rest) in times.items():
        u, p, r = (statistics.median(x) for x in (update, products, rest))
        print(f"{algo:10s} {1e3 * u:8.3f} {1e3 * p:9.3f} {1e3 * r:17.3f} {(p + r) / u:13.1%}")


if __name__ == "__main__":
    main()
