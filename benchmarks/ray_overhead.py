"""What running through Ray costs, and whether --cpus-per-trial holds, on this machine.

    python benchmarks/ray_overhead.py [--total-steps 3000] [--out /tmp/softac-ray-overhead]

(1) Engine overhead: 4 Pendulum-v1 runs (the `pendulum` preset, seeds 0-3) as a 4-trial sweep through a
    local Ray instance (one seed per trial), against the same 4 runs one after the other with `softac train`
    (each on the whole machine). Total wall time of each, and env steps/s of training per run.
(2) CPU placement: one trial alone with --cpus-per-trial 1, two trials side by side with --cpus-per-trial 1,
    and one trial alone with --cpus-per-trial 2: env steps/s of each trial.
Every figure comes from a child process running the `softac` command line, as a user would.
Env steps/s is the median of the metrics rows once updates run, less the first (it includes compiling).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from softac.logger import read_metrics

COMMON = ["--preset", "pendulum", "--eval-every", "1000", "--log-every", "250", "--no-tensorboard", "--no-progress"]


def training_rate(run_dir: Path) -> float:
    rows = [r for r in read_metrics(run_dir) if r["critic_loss"] is not None][1:]
    return float(np.median([r["steps_per_second"] for r in rows]))


def softac(*args: str) -> float:
    started = time.time()
    subprocess.run([sys.executable, "-m", "softac.cli", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "MPLBACKEND": "Agg"})
    return time.time() - started


def sweep_rates(out: Path) -> list[float]:
    return [training_rate(d) for d in sorted((out / "runs").iterdir()) if d.is_dir()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/softac-ray-overhead"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    steps = ["--total-steps", str(args.total_steps)]
    print(f"{os.cpu_count()} cores; Pendulum-v1, preset pendulum, {args.total_steps} env steps per run")

    # (1) the same 4 runs: one after the other with softac train, then as a 4-trial sweep through Ray
    sequential_wall, sequential_rates = 0.0, []
    for seed in range(4):
        sequential_wall += softac("train", *COMMON, *steps, "--seed", str(seed), "--run-root", str(args.out / "train"),
                                  "--run-name", f"seed{seed}")
        sequential_rates.append(training_rate(args.out / "train" / f"seed{seed}"))
    ray_wall = softac("sweep", *COMMON, *steps, "--seeds", "0,1,2,3", "--seeds-per-trial", "1",
                      "--cpus-per-trial", "1", "--out", str(args.out / "sweep4"))
    ray_rates = sweep_rates(args.out / "sweep4")
    print("\n(1) 4 runs: softac train one after the other vs a 4-trial sweep on a local Ray instance (1 CPU per trial)")
    print("| | total wall time | env steps/s per run |\n| --- | --- | --- |")
    print(f"| softac train x 4, one after the other | {sequential_wall:.1f} s | "
          f"{', '.join(f'{r:.1f}' for r in sequential_rates)} |")
    print(f"| softac sweep, 4 trials, --cpus-per-trial 1 | {ray_wall:.1f} s | {', '.join(f'{r:.1f}' for r in ray_rates)} |")
    print(f"sweep / sequential wall time: {ray_wall / sequential_wall:.2f}")

    # (2) placement: one trial alone on 1 core, two side by side on 1 core each, one alone on 2 cores
    placements = {}
    for name, seeds, cpus in (("one trial, 1 CPU", "0", "1"), ("two trials side by side, 1 CPU each", "0,1", "1"),
                              ("one trial, 2 CPUs", "0", "2")):
        out = args.out / f"placement-{seeds.replace(',', '')}-{cpus}"
        softac("sweep", *COMMON, *steps, "--seeds", seeds, "--seeds-per-trial", "1", "--cpus-per-trial", cpus,
               "--out", str(out))
        placements[name] = sweep_rates(out)
    print("\n(2) CPU placement: env steps/s of each trial")
    print("| | env steps/s per trial |\n| --- | --- |")
    for name, rates in placements.items():
        print(f"| {name} | {', '.join(f'{r:.1f}' for r in rates)} |")


if __name__ == "__main__":
    main()
