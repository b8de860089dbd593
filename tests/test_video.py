"""Videos of the deterministic policy (softac.video): `--video-every` during training, `softac eval --video`.

Rendering is headless: MuJoCo through EGL (MUJOCO_GL=egl), Pendulum through pygame with SDL's dummy driver.
A video has the reset frame and one frame per env step: T steps, T + 1 frames.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from softac.checkpoint import CHECKPOINT_DIR
from softac.cli import main
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.evaluate import load_agent
from softac.train import train
from softac import video
from tests.conftest import tiny_config

imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")

# Reading a video back starts ffmpeg in a subprocess, which JAX warns about (fork + exec runs no Python).
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


def video_info(path):
    """(frame count, (width, height), fps, the largest pixel variance of a frame, first frame) of an MP4."""
    reader = imageio.get_reader(str(path), "ffmpeg")
    count, variance, first = 0, 0.0, None
    try:
        for frame in reader:  # one frame at a time: a whole video as float64 is over a gigabyte
            count += 1
            variance = max(variance, float(frame.var()))
            first = frame.astype(np.float64) if first is None else first
        meta = reader.get_meta_data()
    finally:
        reader.close()
    return count, tuple(meta["size"]), meta["fps"], variance, first


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    """A 400-step Pendulum run with a video at steps 200 and 400 (and TensorBoard)."""
    cfg = tiny_config(tmp_path_factory.mktemp("pendulum"), video_every=200, tensorboard=True)
    return train(cfg)[0]


@pytest.fixture(scope="module")
def halfcheetah_run(tmp_path_factory):
    """300 HalfCheetah steps (episodes cut at 50 steps through env_kwargs) with a video at step 300."""
    cfg = tiny_config(tmp_path_factory.mktemp("halfcheetah"), env="HalfCheetah-v5",
                      env_kwargs={"max_episode_steps": 50}, total_steps=300, eval_every=0, eval_episodes=1,
                      video_every=300)
    return train(cfg)[0]


def test_video_every_writes_one_evaluation_episode_per_interval(pendulum_run):
    videos = pendulum_run / "videos"
    assert sorted(p.name for p in videos.glob("*.mp4")) == ["step-200.mp4", "step-400.mp4"]
    assert not [p for p in videos.iterdir() if p.name.startswith(".")]  # no temporary files left
    first_frames = []
    for name in ("step-200.mp4", "step-400.mp4"):
        frames, size, fps, variance, first = video_info(videos / name)
        assert frames == 201  # Pendulum's 200 steps and the reset frame
        assert size == (500, 500)
        assert fps == 30  # Pendulum's metadata["render_fps"]
        assert variance > 0
        first_frames.append(first)
    # Both start from evaluation episode 0's initial state (reset with seed + EVAL_SEED_OFFSET).
    assert np.abs(first_frames[0] - first_frames[1]).mean() < 1.0
    # TensorBoard: an animated GIF per video, in its own event file under videos/.
    events = sorted(videos.glob("events.out.tfevents.*"))
    assert [e.name.rsplit(".", 1)[-1] for e in events] == ["step-200", "step-400"]
    assert all(b"GIF89a" in e.read_bytes() for e in events)


def test_halfcheetah_renders_headless_through_egl(halfcheetah_run, tmp_path):
    frames, size, fps, variance, _ = video_info(halfcheetah_run / "videos" / "step-300.mp4")
    assert (frames, size, fps) == (51, (480, 480), 20)  # 50 steps + the reset frame; HalfCheetah's render_fps
    assert variance > 0
    # A loaded agent's episode, cut at 20 steps.
    returns, paths = video.record_episodes(load_agent(halfcheetah_run), tmp_path / "out", episodes=1, max_steps=20)
    assert [p.name for p in paths] == ["episode-0.mp4"] and returns.shape == (1,)
    frames, size, _, variance, _ = video_info(paths[0])
    assert (frames, size) == (21, (480, 480)) and variance > 0


def test_eval_video_writes_one_mp4_per_episode_and_never_overwrites(pendulum_run, tmp_path, capsys):
    out = tmp_path / "videos"
    assert main(["eval", str(pendulum_run), "--episodes", "2", "--video", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["episode-0.mp4", "episode-1.mp4"]
    for name in ("episode-0.mp4", "episode-1.mp4"):
        frames, size, _, variance, _ = video_info(out / name)
        assert frames == 201 and size == (500, 500) and variance > 0
    # The returns printed are those of the same deterministic episodes without rendering.
    mean = float(next(line.split()[1] for line in printed.splitlines() if line.startswith("mean ")))
    assert mean == pytest.approx(load_agent(pendulum_run).evaluate(episodes=2).mean(), rel=1e-4)

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["eval", str(pendulum_run), "--episodes", "2", "--video", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["episode-0-1.mp4", "episode-0.mp4", "episode-1-1.mp4",
                                                    "episode-1.mp4"]
    assert all((out / name).read_bytes() == data for name, data in before.items())
    assert "episode-0-1.mp4" in capsys.readouterr().out


def test_mujoco_render_failure_is_one_sentence_naming_the_library(halfcheetah_run, tmp_path, monkeypatch, capsys):
    from gymnasium.envs.mujoco import mujoco_rendering

    def no_egl(width, height):
        raise ImportError("Unable to load EGL library")

    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setitem(mujoco_rendering._ALL_RENDERERS, "egl", no_egl)
    out = tmp_path / "videos"
    assert main(["eval", str(halfcheetah_run), "--episodes", "1", "--video", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("softac: error: MuJoCo cannot render headless: EGL") and "libegl1" in err
    assert "MUJOCO_GL=osmesa" in err
    assert list(out.iterdir()) == []  # neither the reserved name nor a temporary file is left


def test_video_every_fails_before_training_where_nothing_renders(tmp_path, monkeypatch, capsys):
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    def no_pygame(self):
        raise gym.error.DependencyNotInstalled('pygame is not installed, run `pip install "gymnasium[classic-control]"`')

    monkeypatch.setattr(PendulumEnv, "render", no_pygame)
    status = main(["train", "--env", "Pendulum-v1", "--total-steps", "200", "--learning-starts", "100",
                   "--hidden-sizes", "32,32", "--batch-size", "32", "--video-every", "100", "--no-progress",
                   "--no-tensorboard", "--run-root", str(tmp_path / "runs")])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pygame" in err and "softac[video]" in err
    assert not list((tmp_path / "runs").glob(f"*/{CHECKPOINT_DIR}"))  # no training happened


def test_missing_mp4_writer_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(SoftacError, match=r"imageio-ffmpeg .*pip install 'softac\[video\]'"):
        video.check_video_support(tiny_config(tmp_path))


def test_video_every_is_a_non_negative_integer():
    assert SACConfig().video_every == 0
    with pytest.raises(SoftacError, match="video_every must be a non-negative integer"):
        SACConfig(video_every=-1)
