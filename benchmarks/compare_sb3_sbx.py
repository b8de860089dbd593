"""Training throughput of Stable-Baselines3 and SBX SAC on HalfCheetah-v5, to put softac's beside.

Not part of softac's dependencies: run it in an environment where `stable-baselines3` (with torch)
and/or `sbx-rl` are installed, e.g.

    python -m venv /tmp/cmp && /tmp/cmp/bin/pip install torch stable-baselines3 sbx-rl "gymnasium[mujoco]"
    /tmp/cmp/bin/python benchmarks/compare_sb3_sbx.py --steps 2000

Both use softac's published hyperparameters (256-256 ReLU, batch 256, buffer 1e6, lr 3e-4, tau
0.005, gamma 0.99, one gradient step per env step, 5000 warm-up steps). The rate counts env steps
per second after the warm-up and after one short training call that absorbs compilation. Compare
it with `softac bench` run on the same machine at the same time: these machines are noisy.
"""

import argparse
import time

import gymnasium as gym


def steps_per_second(sac_class, env_id: str, steps: int) -> float:
    model = sac_class("MlpPolicy", gym.make(env_id), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=5000,
                      batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
                      policy_kwargs={"net_arch": [256, 256]}, seed=0, verbose=0)
    model.learn(5200)  # warm-up plus 200 training steps (compilation, allocation)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads for SB3 (0: torch's default, one per core)")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    for name, module in (("Stable-Baselines3", "stable_baselines3"), ("SBX", "sbx")):
        try:
            sac_class = __import__(module, fromlist=["SAC"]).SAC
        except ImportError:
            print(f"{name}: not installed, skipped")
            continue
        print(f"{name} SAC on {args.env}: {steps_per_second(sac_class, args.env, args.steps):.1f} env steps/s "
              f"of training", flush=True)


if __name__ == "__main__":
    main()
