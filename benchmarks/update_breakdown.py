"""Where an update's time goes beyond its matrix products: how close to the FLOP ceiling an update can come.

    python benchmarks/update_breakdown.py [--algos sac,tqc,droq,redq,crossq,simbav2] [--rounds 5] [--repeats 50]

For each algorithm (its own defaults, HalfCheetah-v5 shapes, 1 seed, the trainer's jitted update as `softac
bench` times it), in interleaved rounds in one process:
- the update as trained (median updates/s over the rounds);
- its matrix products alone: XLA's FLOPs of the update over this machine's FP32 matmul rate on SAC's dense
  shapes, measured in the same rounds (the ceiling `softac bench` reports, as a time per update);
- its parameter bookkeeping alone: one optimiser step of every parameter tree the update steps (the same
  optax transformation, on gradients of the same shapes) and the Polyak step of its target parameters, jitted
  and vmapped over the seed axis the way the update is. This is memory traffic over every parameter (read
  theta, g, m, v; write theta, m, v), which no matrix product performs and no fusion removes;
- the same with the optimiser state flattened into one vector (`optax.flatten`), one fused loop in place of
  one per parameter array.

It prints the fraction of the ceiling the update reaches and the highest fraction possible if everything but
the matrix products and the bookkeeping took no time: matmul / (matmul + bookkeeping).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.throughput import UpdateTimer, dense_shapes, matmul_rate

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
    timers = {algo: (UpdateTimer(agent), BookkeepingTimer(agent, False), BookkeepingTimer(agent, True))
              for algo, agent in agents.items()}
    rates = []
    updates, books, flats = ({a: [] for a in agents} for _ in range(3))
    for _ in range(args.rounds):
        rates.append(matmul_rate(shapes, repeats=args.repeats))
        for algo, (update, book, flat) in timers.items():
            updates[algo].append(1.0 / update.updates_per_second(args.repeats))
            books[algo].append(book.seconds_per_step(args.repeats))
            flats[algo].append(flat.seconds_per_step(args.repeats))
    rate = statistics.median(rates)
    print(f"{args.env}, 1 seed, medians of {args.rounds} interleaved rounds; FP32 matmul rate on SAC's dense "
          f"shapes {rate / 1e9:.1f} GFLOP/s; times per update in ms")
    print(f"{'algorithm':10s} {'params':>9s} {'update':>8s} {'matmuls':>8s} {'fraction':>9s} {'bookkeep':>9s} "
          f"{'(flat)':>7s} {'bound':>7s} {'other':>7s}")
    for algo, agent in agents.items():
        update_s = statistics.median(updates[algo])
        matmul_s = timers[algo][0].flops / rate
        book_s = min(statistics.median(books[algo]), statistics.median(flats[algo]))
        other_s = update_s - matmul_s - book_s
        print(f"{algo:10s} {parameter_count(agent):9,d} {1e3 * update_s:8.3f} {1e3 * matmul_s:8.3f} "
              f"{matmul_s / update_s:9.1%} {1e3 * statistics.median(books[algo]):9.3f} "
              f"{1e3 * statistics.median(flats[algo]):7.3f} {matmul_s / (matmul_s + book_s):7.1%} "
              f"{1e3 * other_s:7.3f}")
    print("update: the trainer's jitted update; matmuls: XLA's FLOPs / the matmul rate; fraction: matmuls / update; "
          "bookkeep: optimiser + Polyak steps alone (flat: optax.flatten); bound: matmuls / (matmuls + the "
          "cheaper bookkeeping); other: the remainder (activations, sampling, losses, normalisation, dispatch)")


if __name__ == "__main__":
    main()
