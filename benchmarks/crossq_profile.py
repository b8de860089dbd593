"""Where CrossQ's update time goes, against SAC's: the jitted update alone (1 seed, HalfCheetah-v5 shapes,
256-wide networks) of variants that each remove one suspect, timed in interleaved rounds in one process.

    python benchmarks/crossq_profile.py [--rounds 5] [--repeats 50]

Variants: sac; crossq as configured (policy delay 3: the actor step behind a lax.cond); crossq with policy
delay 1 (the cond always taken); crossq with the actor step never taken (the critic step alone). Prints the
median updates/s over the rounds, XLA's FLOPs per update, and the time per update beside SAC's.
"""

import argparse
import statistics

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.throughput import UpdateTimer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    env = make_env(args.env)
    obs_dim, action_dim = space_dims(env)
    env.close()
    base = dict(env=args.env, critic_hidden_sizes=(256, 256))
    variants = {
        "sac": SACConfig.build(algo="sac", **base),
        "crossq (policy delay 3)": SACConfig.build(algo="crossq", **base),
        "crossq (policy delay 1)": SACConfig.build(algo="crossq", policy_delay=1, **base),
        "crossq (critic step only)": SACConfig.build(algo="crossq", policy_delay=10**9, **base),
    }
    timers = {name: UpdateTimer(make_agent(cfg, obs_dim, action_dim)) for name, cfg in variants.items()}
    rates = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, timer in timers.items():
            rates[name].append(timer.updates_per_second(args.repeats))
    sac_ms = 1e3 / statistics.median(rates["sac"])
    print(f"{args.env}: jitted update alone, 1 seed, batch 256, 256-wide networks, median of {args.rounds} rounds")
    for name, timer in timers.items():
        ups = statistics.median(rates[name])
        print(f"{name:28s} {ups:8.1f} updates/s  {1e3 / ups:6.2f} ms ({1e3 / ups / sac_ms:4.2f}x sac)  "
              f"{timer.flops / 1e9:5.2f} GFLOP ({timer.flops / timers['sac'].flops:4.2f}x sac)")


if __name__ == "__main__":
    main()
