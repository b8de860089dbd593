"""Where an update's time goes beyond its matrix products: how close to the FLOP ceiling an update can come.

    python benchmarks/update_breakdown.py [--algos sac,tqc,droq,redq,crossq,simbav2] [--rounds 5] [--repeats 50]

For each algorithm (its own defaults, HalfCheetah-v5 shapes, 1 seed, the trainer's jitted update as `softac
bench` times it), in interleaved rounds in one process:
- the update as trained (median updates/s over the rounds);
- its matrix products at the ceiling: XLA's FLOPs of the update over this machine's FP32 matmul rate on SAC's dense
  shapes, measured in the same rounds (the ceiling `softac bench` reports, as a time per update);
- its parameter bookkeeping alone: one optimiser step of every parameter tree the update steps (the same
  optax transformation, on gradients of the same shapes) and the Polyak step of its target parameters, jitted
  and vmapped over the seed axis the way the update is. This is memory traffic over every parameter (read
  theta, g, m, v; write theta, m, v), which no matrix product performs and no fusion removes;
- the same with the optimiser state flattened into one vector (`optax.flatten`), one fused loop in place of
  one per parameter array;
- the update's own matrix products alone (`ProductsTimer`): every dot_general of the update's jaxpr after
  dead-code elimination, with its shapes and dimension numbers (so the weight gradients contract over the
  batch axis, as autodiff makes them), in one jitted call on random operands.

It prints the fraction of the ceiling the update reaches; the highest fraction possible if everything but
the matrix products and the bookkeeping took no time, matmul / (matmul + bookkeeping); the same with the
products at the speed this machine runs them alone in their own forms, matmul / (products alone +
bookkeeping); and how much of that the update reaches, (products alone + bookkeeping) / update.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.throughput import UpdateTimer, critic_only_agent, dense_shapes, matmul_rate

# (parameter field, optimiser attribute) pairs an update steps, and the target trees Polyak-averaged.
OPTIMISED = [("actor_params", "actor_optimizer"), ("critic_params", "critic_optimizer"),
             ("value_params", "value_optimizer")]
TARGETS = [("target_critic_params", "critic_params"), ("target_value_params", "value_params")]


def bookkeeping_step(agent, flatten: bool, actor: bool):
    """A jitted, seed-vmapped function doing optimiser steps and Polyak steps alone, and its input: the actor's
    optimiser step if `actor`, else every other tree's and the Polyak steps."""
    state = jax.vmap(agent.init)(jnp.stack([jax.random.PRNGKey(0)]))
    trees, optimisers = [], []
    for field, opt_name in OPTIMISED:
        if hasattr(state, field) and hasattr(agent, opt_name) and (field == "actor_params") == actor:
            optimiser = getattr(agent, opt_name)
            trees.append(getattr(state, field))
            optimisers.append(optax.flatten(optimiser) if flatten else optimiser)
    targets = [] if actor else [(getattr(state, t), jax.tree_util.tree_map(jnp.copy, getattr(state, s))) for t, s in TARGETS if hasattr(state, t)]
    opt_states = [jax.vmap(opt.init)(tree) for opt, tree in zip(optimisers, trees)]
    grads = [jax.tree_util.tree_map(lambda x: 1e-3 * jnp.ones_like(x), tree) for tree in trees]
    tau = agent.cfg.tau

    def one_seed(trees, opt_states, grads, targets):
        new_trees, new_states = [], []
        for opt, tree, opt_state, grad in zip(optimisers, trees, opt_states, grads):
            updates, opt_state = opt.update(grad, opt_state, tree)
            new_trees.append(optax.apply_updates(tree, updates))
            new_states.append(opt_state)
        new_targets = [(jax.tree_util.tree_map(lambda t, s: (1 - tau) * t + tau * s, t, s), s) for t, s in targets]
        return new_trees, new_states, grads, new_targets

    step = jax.jit(jax.vmap(one_seed), donate_argnums=(0, 1, 3))
    return step, [trees, opt_states, grads, targets]


class BookkeepingTimer:
    """Seconds of the bookkeeping of one update, the actor's part counted once per `policy_delay` updates as
    training runs it (DroQ and REDQ step the actor once per 20 critic steps, CrossQ once per 3)."""

    def __init__(self, agent, flatten: bool):
        self.delay = getattr(agent, "policy_delay", 1)
        self.parts = [bookkeeping_step(agent, flatten, actor) for actor in (False, True)]
        for part in range(2):
            self._run(part, 2)

    def _run(self, part: int, repeats: int) -> None:
        step, args = self.parts[part]
        for _ in range(repeats):
            args = list(step(*args))
        jax.block_until_ready(args)
        self.parts[part] = (step, args)

    def seconds_per_step(self, repeats: int) -> float:
        seconds = []
        for part in range(2):
            start = time.perf_counter()
            self._run(part, repeats)
            seconds.append((time.perf_counter() - start) / repeats)
        return seconds[0] + seconds[1] / self.delay


def _sub_jaxprs(value):
    """The jaxprs held in one equation parameter (scan and cond bodies, custom-derivative and pjit calls)."""
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jax.extend.core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def dot_generals(jaxpr) -> list:
    """Every dot_general of a jaxpr, sub-jaxprs included (both branches of a cond, a scan body once), as
    (lhs aval, rhs aval, dimension numbers, preferred element type)."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append((eqn.invars[0].aval, eqn.invars[1].aval, eqn.params["dimension_numbers"],
                          eqn.params.get("preferred_element_type")))
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                found += dot_generals(sub)
    return found


def dot_flops(lhs, rhs, dimension_numbers) -> float:
    """2 x batch x lhs-free x rhs-free x contracted: the multiply-adds of one dot_general."""
    (lc, rc), (lb, rb) = dimension_numbers
    size = lambda shape, axes: math.prod(shape[a] for a in axes)
    lhs_free = [a for a in range(len(lhs.shape)) if a not in lc and a not in lb]
    rhs_free = [a for a in range(len(rhs.shape)) if a not in rc and a not in rb]
    return 2.0 * size(lhs.shape, lb) * size(lhs.shape, lhs_free) * size(rhs.shape, rhs_free) * size(lhs.shape, lc)


class ProductsTimer:
    """The update's own matrix products alone: every dot_general of the trainer's update (the same shapes,
    dimension numbers and so operand layouts: forward products, input gradients, weight gradients contracting
    over the batch, the ones-vector sums), run in one jitted call on random operands, nothing else. Its time
    is what the products cost at the rate this machine reaches for their forms, where the ceiling assumes the
    rate of plain row-major products. Counted as training runs the update: the critic step's products every
    update, the actor step's once per `policy_delay` (XLA and the jaxpr hold both branches of its cond)."""

    def __init__(self, timer: UpdateTimer, agent):
        self.delay = getattr(agent, "policy_delay", 1)
        full = self._dots(agent, timer)
        critic = self._dots(critic_only_agent(agent), timer) if self.delay > 1 else None
        full_flops = sum(dot_flops(*d[:3]) for d in full)
        critic_flops = full_flops if critic is None else sum(dot_flops(*d[:3]) for d in critic)
        self.flops = critic_flops + (full_flops - critic_flops) / self.delay
        self.parts = [self._compiled(full)] + ([] if critic is None else [self._compiled(critic)])
        self.seconds_per_update(2)

    @staticmethod
    def _dots(agent, timer):
        fn = jax.vmap(agent.update_many, in_axes=(0, 0, None))
        jaxpr = jax.make_jaxpr(fn)(timer.state, timer.batch, np.int32(0)).jaxpr
        # Without the products whose results nothing uses (the input gradient of a critic's first layer in the
        # critic loss), as XLA removes them: JAX's own dead-code elimination (a private module: no public one).
        from jax._src.interpreters import partial_eval

        jaxpr, _ = partial_eval.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
        return dot_generals(jaxpr)

    @staticmethod
    def _compiled(dots):
        rng = np.random.default_rng(0)
        operands = [(jnp.asarray(rng.standard_normal(lhs.shape), lhs.dtype),
                     jnp.asarray(rng.standard_normal(rhs.shape), rhs.dtype)) for lhs, rhs, _, _ in dots]
        numbers = [(dims, preferred) for _, _, dims, preferred in dots]
        fn = jax.jit(lambda ops: [jax.lax.dot_general(a, b, dims, preferred_element_type=preferred)
                                  for (a, b), (dims, preferred) in zip(ops, numbers)])
        return fn, operands

    def seconds_per_update(self, repeats: int) -> float:
        seconds = []
        for fn, operands in self.parts:
            jax.block_until_ready(fn(operands))
            start = time.perf_counter()
            for _ in range(repeats):
                out = fn(operands)
            jax.block_until_ready(out)
            seconds.append((time.perf_counter() - start) / repeats)
        if len(seconds) == 1:
            return seconds[0]
        full, critic = seconds
        return critic + (full - critic) / self.delay


def parameter_count(agent) -> int:
    state = agent.init(jax.random.PRNGKey(0))
    return sum(int(x.size) for field, _ in OPTIMISED if hasattr(state, field)
               for x in jax.tree_util.tree_leaves(getattr(state, field)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--algos", default="sac,tqc,droq,redq,crossq,simbav2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--crossq-width", type=int, default=256, help="CrossQ's critic width (authors' 2048)")
    parser.add_argument("--simbav2-width", type=int, default=128, help="SimbaV2's critic width (authors' 512)")
    args = parser.parse_args()
    env = make_env(args.env)
    obs_dim, action_dim = space_dims(env)
    env.close()
    widths = {"crossq": dict(critic_hidden_sizes=(args.crossq_width,) * 2),
              "simbav2": dict(critic_hidden_dim=args.simbav2_width)}
    agents = {algo: make_agent(SACConfig.build(algo=algo, env=args.env, **widths.get(algo, {})), obs_dim, action_dim)
              for algo in args.algos.split(",")}
    shapes = dense_shapes(agents[next(iter(agents))])
    timers = {}
    for algo, agent in agents.items():
        update = UpdateTimer(agent)
        timers[algo] = (update, BookkeepingTimer(agent, False), BookkeepingTimer(agent, True),
                        ProductsTimer(update, agent))
    rates = []
    updates, books, flats, products = ({a: [] for a in agents} for _ in range(4))
    for _ in range(args.rounds):
        rates.append(matmul_rate(shapes, repeats=args.repeats))
        for algo, (update, book, flat, product) in timers.items():
            updates[algo].append(1.0 / update.updates_per_second(args.repeats))
            books[algo].append(book.seconds_per_step(args.repeats))
            flats[algo].append(flat.seconds_per_step(args.repeats))
            products[algo].append(product.seconds_per_update(args.repeats))
    rate = statistics.median(rates)
    print(f"{args.env}, 1 seed, medians of {args.rounds} interleaved rounds; FP32 matmul rate on SAC's dense "
          f"shapes {rate / 1e9:.1f} GFLOP/s; times per update in ms")
    print(f"{'algorithm':10s} {'params':>9s} {'update':>8s} {'matmuls':>8s} {'fraction':>9s} {'bookkeep':>9s} "
          f"{'(flat)':>7s} {'bound':>7s} {'other':>7s} {'products':>9s} {'GFLOP/s':>8s} {'bound2':>7s} "
          f"{'reached':>8s}")
    for algo, agent in agents.items():
        update_s = statistics.median(updates[algo])
        matmul_s = timers[algo][0].flops / rate
        book_s = min(statistics.median(books[algo]), statistics.median(flats[algo]))
        other_s = update_s - matmul_s - book_s
        product_s = statistics.median(products[algo])
        print(f"{algo:10s} {parameter_count(agent):9,d} {1e3 * update_s:8.3f} {1e3 * matmul_s:8.3f} "
              f"{matmul_s / update_s:9.1%} {1e3 * statistics.median(books[algo]):9.3f} "
              f"{1e3 * statistics.median(flats[algo]):7.3f} {matmul_s / (matmul_s + book_s):7.1%} "
              f"{1e3 * other_s:7.3f} {1e3 * product_s:9.3f} {timers[algo][3].flops / product_s / 1e9:8.1f} "
              f"{matmul_s / (product_s + book_s):7.1%} {(product_s + book_s) / update_s:8.1%}")
    print("update: the trainer's jitted update; matmuls: XLA's FLOPs / the matmul rate; fraction: matmuls / update; "
          "bookkeep: optimiser + Polyak steps alone (flat: optax.flatten); bound: matmuls / (matmuls + the "
          "cheaper bookkeeping); other: the remainder (activations, sampling, losses, normalisation, dispatch); "
          "products: the update's own dot_generals alone (ProductsTimer) and their GFLOP/s; bound2: the fraction "
          "of the ceiling an update reaches if it took only its products alone and the bookkeeping, matmuls / "
          "(products + bookkeeping); reached: (products + bookkeeping) / update")


if __name__ == "__main__":
    main()
