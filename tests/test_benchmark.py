"""The benchmark command: report from real runs, resume after interruption, skip finished runs,
one environment's failure does not lose the others, sections regenerate in place."""

from __future__ import annotations

from softac.benchmark import get_suite, run_suite
from softac.checkpoint import checkpoint_step
from softac.cli import main
from softac.logger import read_metrics


def test_smoke_suite_writes_table_plots_and_raw_metrics(tmp_path):
    docs = tmp_path / "docs" / "benchmarks.md"
    report = run_suite(get_suite("smoke"), out_root=tmp_path / "runs", docs=docs)
    text = docs.read_text()
    assert "## Suite `smoke`" in text and "| Pendulum-v1 | 600 |" in text and "-1,500 to -1,000" in text
    assert "Steps / wall time to a mean evaluation return of -1500" in text
    assert (tmp_path / "docs" / "benchmarks" / "smoke" / "Pendulum-v1.png").stat().st_size > 0
    for seed in (0, 1):
        raw = tmp_path / "docs" / "benchmarks" / "smoke" / "Pendulum-v1" / f"seed{seed}.csv"
        assert raw.read_text().startswith("env_step,")
    measured = report["figures"]["Pendulum-v1"]["at"][600]
    assert measured[2] == 2 and measured[0] < 0  # two seeds evaluated at step 600


def test_interrupted_benchmark_continues_and_finished_runs_are_skipped(tmp_path, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "benchmarks.md"
    run_suite(get_suite("smoke", total_steps=400), out_root=runs, docs=docs)  # "interrupted" at 400
    run_dir = runs / "smoke" / "Pendulum-v1__seed0"
    evals_before = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    assert checkpoint_step(run_dir) == 400
    run_suite(get_suite("smoke"), out_root=runs, docs=docs)
    assert "continuing from env step 400" in capsys.readouterr().out
    evals_after = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    assert evals_after[:2] == evals_before and [r["env_step"] for r in evals_after] == [200, 400, 600]
    checkpoint_before = (run_dir / "checkpoint.pkl").stat().st_mtime_ns
    run_suite(get_suite("smoke"), out_root=runs, docs=docs)
    assert "finished earlier" in capsys.readouterr().out
    assert (run_dir / "checkpoint.pkl").stat().st_mtime_ns == checkpoint_before


def test_a_failing_environment_does_not_lose_the_others(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    code = main(["benchmark", "--suite", "smoke", "--envs", "softac-test/NaNAfter-v0,Pendulum-v1",
                 "--total-steps", "400", "--out-root", str(tmp_path / "runs"), "--docs", str(docs)])
    assert code == 2
    text = docs.read_text()
    assert "The last run FAILED: SoftacError: The environment of seed 0 returned a non-finite" in text
    assert "| Pendulum-v1 | 400 |" in text
    assert "FAILED" in capsys.readouterr().out


def test_environments_run_separately_keep_each_others_blocks(tmp_path):
    # e.g. one MuJoCo environment per session: each run regenerates its own block and keeps the others.
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- suite:other:start -->\nkeep me\n<!-- suite:other:end -->\n")
    runs = tmp_path / "runs"
    run_suite(get_suite("smoke", total_steps=200), out_root=runs, docs=docs)
    run_suite(get_suite("smoke", envs=("MountainCarContinuous-v0",), total_steps=200), out_root=runs, docs=docs)
    run_suite(get_suite("smoke", total_steps=200), out_root=runs, docs=docs)  # regenerate the first again
    text = docs.read_text()
    assert "keep me" in text and text.count("## Suite `smoke`") == 1
    assert text.count("### Pendulum-v1") == 1 and text.count("### MountainCarContinuous-v0") == 1
    assert text.index("## Suite `smoke`") < text.index("### Pendulum-v1") < text.index("### MountainCarContinuous-v0")
