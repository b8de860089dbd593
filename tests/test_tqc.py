"""TQC (Kuznetsov et al., ICML 2020): its losses against float64 numpy written with loops over atoms, its
hyperparameters' checks, its flags, and a learning test (docs/algorithms.md, "TQC (Kuznetsov et al., ICML 2020)").
The contract every algorithm meets (determinism, resume, export, ...) is tests/test_algorithm_contract.py's."""

from __future__ import annotations

import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac import SACConfig, preset, train
from softac.algos.tqc import losses
from softac.errors import SoftacError
from softac.logger import read_metrics

N, B, M, D = 3, 4, 5, 2  # critics, batch, atoms per critic, atoms dropped per critic


def example(seed: int = 0):
    rng = np.random.default_rng(seed)
    return dict(atoms=rng.normal(size=(N, B, M)) * 2.0, next_atoms=rng.normal(size=(N, B, M)) * 2.0,
                reward=rng.normal(size=B), terminated=np.array([0.0, 1.0, 0.0, 0.0]),
                next_log_prob=rng.normal(size=B), alpha=0.3, gamma=0.9)


def reference_target_atoms(x, drop: int, gamma) -> np.ndarray:
    """y_i(b) = r_b + gamma_b (1 - d_b) (z_(i)(b) - alpha log pi_b), z the smallest N (M - drop) pooled atoms."""
    out = []
    for b in range(B):
        pooled = sorted(float(x["next_atoms"][n, b, m]) for n in range(N) for m in range(M))
        kept = pooled[:N * (M - drop)]
        g = gamma[b] if np.ndim(gamma) else gamma
        out.append([x["reward"][b] + g * (1.0 - x["terminated"][b]) * (z - x["alpha"] * x["next_log_prob"][b])
                    for z in kept])
    return np.array(out, np.float64)


def reference_quantile_huber_loss(atoms: np.ndarray, target: np.ndarray) -> float:
    """The mean over (n, b, m, i) of |tau_m - 1{u < 0}| L(u), u = y_i(b) - theta^m_n(b), tau_m = (m + 1/2) / M."""
    n_critics, batch, n_quantiles = atoms.shape
    total, count = 0.0, 0
    for n in range(n_critics):
        for b in range(batch):
            for m in range(n_quantiles):
                tau = (m + 0.5) / n_quantiles
                for y in target[b]:
                    u = float(y) - float(atoms[n, b, m])
                    huber = 0.5 * u * u if abs(u) <= 1.0 else abs(u) - 0.5
                    total += abs(tau - (1.0 if u < 0 else 0.0)) * huber
                    count += 1
    return total / count


def f32(x):
    return jnp.asarray(x, jnp.float32)


@pytest.mark.parametrize("drop", [0, D, M - 1])
def test_truncated_target_atoms_match_a_loop_over_the_pooled_sorted_atoms(drop):
    # The kept atoms come in pooled order (their order is immaterial to the loss): compared as sorted rows.
    x = example()
    kept = jnp.sort(losses.truncated_target_atoms(f32(x["next_atoms"]), drop), axis=-1)
    assert kept.shape == (B, N * (M - drop))
    target = losses.target_atoms(f32(x["reward"]), f32(x["terminated"]), kept, f32(x["next_log_prob"]),
                                 f32(x["alpha"]), x["gamma"])
    np.testing.assert_allclose(np.asarray(target, np.float64), reference_target_atoms(x, drop, x["gamma"]),
                               rtol=1e-5, atol=1e-5)


def test_target_atoms_take_a_discount_per_transition():
    x = example(1)
    gamma = np.array([0.9, 0.81, 0.729, 1.0])
    kept = jnp.sort(losses.truncated_target_atoms(f32(x["next_atoms"]), D), axis=-1)
    target = losses.target_atoms(f32(x["reward"]), f32(x["terminated"]), kept, f32(x["next_log_prob"]),
                                 f32(x["alpha"]), f32(gamma))
    np.testing.assert_allclose(np.asarray(target, np.float64), reference_target_atoms(x, D, gamma),
                               rtol=1e-5, atol=1e-5)


def test_the_dropped_atoms_are_the_largest_of_all_critics_together():
    # Critic 1's atoms all exceed critic 0's: dropping d per critic removes the top N d atoms of the pool,
    # all of them critic 1's, not d from each critic.
    next_atoms = np.stack([np.arange(M, dtype=np.float64), 100.0 + np.arange(M)])[:, None, :]  # [2, 1, M]
    kept = np.asarray(losses.truncated_target_atoms(f32(next_atoms), D))
    np.testing.assert_array_equal(kept[0], np.concatenate([np.arange(M), 100.0 + np.arange(M - 2 * D)]))


def test_quantile_huber_loss_matches_a_loop_over_atoms():
    x = example(2)
    target = reference_target_atoms(x, D, x["gamma"])
    loss, info = losses.quantile_huber_loss(f32(x["atoms"]), f32(target))
    assert abs(float(loss) - reference_quantile_huber_loss(x["atoms"], target)) < 1e-5
    assert float(info["critic_loss"]) == float(loss)
    assert abs(float(info["q_mean"]) - float(np.mean(x["atoms"]))) < 1e-6
    # Both branches of the Huber loss are exercised.
    deltas = np.abs(target[None, :, None, :] - x["atoms"][..., None])
    assert np.any(deltas <= 1.0) and np.any(deltas > 1.0)


def test_truncation_keeps_ties_and_the_pooled_order():
    # Tied atoms at the cut: exactly N d are dropped, whichever of the tied ones; the rest keep their pooled order.
    next_atoms = np.array([[[3.0, 1.0, 5.0]], [[5.0, 2.0, 0.0]]])  # [N=2, B=1, M=3], pool 3 1 5 5 2 0
    kept = np.asarray(losses.truncated_target_atoms(f32(next_atoms), 1))
    np.testing.assert_array_equal(kept[0], [3.0, 1.0, 2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(losses.truncated_target_atoms(f32(next_atoms), 0))[0],
                                  [3.0, 1.0, 5.0, 5.0, 2.0, 0.0])


def reference_quantile_huber_gradient(atoms: np.ndarray, target: np.ndarray) -> np.ndarray:
    """d/d theta^m_n(b) of the mean loss, by central differences of `reference_quantile_huber_loss` in float64."""
    grad, eps = np.zeros_like(atoms), 1e-6
    for index in np.ndindex(*atoms.shape):
        up, down = atoms.copy(), atoms.copy()
        up[index] += eps
        down[index] -= eps
        difference = reference_quantile_huber_loss(up, target) - reference_quantile_huber_loss(down, target)
        grad[index] = difference / (2 * eps)
    return grad


def test_quantile_huber_gradient_matches_finite_differences_and_stops_at_the_target():
    x = example(3)
    target = reference_target_atoms(x, D, x["gamma"])
    grad_atoms, grad_target = jax.grad(lambda a, y: losses.quantile_huber_loss(a, y)[0], argnums=(0, 1))(
        f32(x["atoms"]), f32(target))
    expected = reference_quantile_huber_gradient(x["atoms"], target)
    np.testing.assert_allclose(np.asarray(grad_atoms, np.float64), expected, rtol=1e-4, atol=1e-7)
    assert not np.any(np.asarray(grad_target))


def test_quantile_midpoints():
    np.testing.assert_allclose(np.asarray(losses.quantile_midpoints(4)), [0.125, 0.375, 0.625, 0.875])


def test_actor_loss_averages_all_atoms_of_all_critics():
    x = example(3)
    log_prob = x["next_log_prob"]
    loss, info = losses.actor_loss(f32(x["atoms"]), f32(log_prob), f32(x["alpha"]))
    expected = np.mean([x["alpha"] * log_prob[b] - np.mean(x["atoms"][:, b, :]) for b in range(B)])
    assert abs(float(loss) - expected) < 1e-5
    assert abs(float(info["entropy"]) + np.mean(log_prob)) < 1e-6


def test_top_quantiles_to_drop_must_be_smaller_than_n_quantiles():
    with pytest.raises(SoftacError) as error:
        SACConfig.build(algo="tqc", top_quantiles_to_drop=25)
    assert str(error.value) == "top_quantiles_to_drop (25) must be smaller than n_quantiles (25)."
    with pytest.raises(SoftacError, match="n_quantiles must be a positive integer, got 0"):
        SACConfig.build(algo="tqc", n_quantiles=0)
    with pytest.raises(SoftacError, match="n_critics must be a positive integer, got 0"):
        SACConfig.build(algo="tqc", n_critics=0)
    assert SACConfig.build(algo="tqc", top_quantiles_to_drop=0).algo_config.top_quantiles_to_drop == 0


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "softac.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_refuses_dropping_every_atom_in_one_sentence(tmp_path):
    result = run_cli("train", "--algo", "tqc", "--env", "Pendulum-v1", "--top-quantiles-to-drop", "25",
                     "--total-steps", "10", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("softac: error:")]
    assert lines == ["softac: error: top_quantiles_to_drop (25) must be smaller than n_quantiles (25)."], \
        result.stderr
    assert not (tmp_path / "runs").exists()


def test_train_help_lists_the_quantile_flags(tmp_path):
    result = run_cli("train", "--algo", "tqc", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--n-quantiles", "--top-quantiles-to-drop", "--n-critics"):
        assert flag in result.stdout


@pytest.mark.slow
def test_tqc_pendulum_reaches_minus_250_within_8000_steps_on_two_seeds(tmp_path):
    # The `pendulum` preset's settings (lr 1e-3, 1000 warm-up steps, at most 8000 env steps, evaluation every
    # 2000 steps with 10 deterministic episodes) with TQC's defaults (2 critics x 25 atoms, 2 dropped per
    # critic); seeds 0 and 1 trained at once. Training stops at the first evaluation where both seeds reach
    # -250 (about 4000 steps when it passes, 8000 when it fails), as the CartPole learning test does.
    cfg = preset("pendulum").replace(algo="tqc", seeds=(0, 1), run_root=str(tmp_path), progress=False,
                                     tensorboard=False, stop_at_eval_return=-250.0)
    assert cfg.total_steps == 8000 and cfg.eval_every == 2000 and cfg.eval_episodes == 10
    start = time.perf_counter()
    run_dirs = train(cfg)
    elapsed = time.perf_counter() - start
    assert len(run_dirs) == 2
    curves = [[(r["env_step"], r["eval_return_mean"]) for r in read_metrics(run_dir)
               if r["eval_return_mean"] is not None] for run_dir in run_dirs]
    print(f"evaluations (env step, mean return) of seeds 0 and 1: {curves}; {elapsed:.0f} s for both")
    assert all(curve[-1][0] <= 8000 and curve[-1][1] >= -250 for curve in curves), curves
