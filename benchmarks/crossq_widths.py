"""CrossQ's critic width on this machine: the jitted update alone for SAC and for CrossQ with critics of
each width, side by side in one run, on HalfCheetah-v5's shapes (one seed, batch 256, one update per call).

    python benchmarks/crossq_widths.py [--widths 256,1024,2048] [--repeats 100]

Prints updates/s, XLA's FLOPs per update and the wall time 100k updates (= env steps at UTD 1) would
take at that rate, so the learning curves of docs/benchmarks.md can be read at equal wall-clock time.
"""

import argparse

from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.throughput import updates_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--widths", default="256,1024,2048")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    env = make_env(args.env)
    obs_dim, action_dim = space_dims(env)
    env.close()
    variants = [("sac", SACConfig(algo="sac", env=args.env))]
    variants += [(f"crossq critics {w},{w}", SACConfig(algo="crossq", env=args.env, critic_hidden_sizes=(int(w),) * 2))
                 for w in args.widths.split(",")]
    print(f"{args.env}: jitted update alone, 1 seed, batch 256 (CrossQ: joint batch of 512 in the critics)")
    for name, cfg in variants:
        ups, flops = updates_per_second(make_agent(cfg, obs_dim, action_dim), args.repeats)
        print(f"{name:24s} {ups:8.1f} updates/s  {flops / 1e9:6.2f} GFLOP/update  "
              f"100k updates in {100_000 / ups / 60:6.1f} min")


if __name__ == "__main__":
    main()
