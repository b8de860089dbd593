"""Videos of the deterministic policy: MP4s of evaluation episodes (`softac eval --video`, `--video-every`).

- `record_episodes(agent, out_dir, ...)`: episodes of a loaded agent (softac.evaluate.Agent), one MP4
  each, `out_dir/episode-<i>.mp4` with episode i reset with seed `seed + i` (as `Agent.evaluate`). A
  name already taken gets a suffix (`episode-0-1.mp4`, ...): existing files are never overwritten.
- `record_training_videos(...)`: called by the training loop every `video_every` env steps: one
  deterministic evaluation episode of every seed (reset like evaluation episode 0, seed s + 100_000),
  written to `RUN_DIR/videos/step-<N>.mp4` (replaced if a resumed run records step N again) and,
  with `tensorboard`, to TensorBoard as an animated GIF in `RUN_DIR/videos` (tensorboardX's own
  `add_video` needs moviepy; softac encodes the GIF with Pillow, a reduced preview: at most 10 frames
  per second of episode time and at most 160 pixels a side).
- Every video has one frame per observation: the reset frame and one after every env step, so an
  episode of T steps has T + 1 frames; frames per second are the environment's `render_fps`.

Rendering without a display or GPU: MuJoCo renders through EGL (MUJOCO_GL=egl, the default softac
sets on Linux) and pygame-based environments (classic control) through SDL's dummy video driver
(SDL_VIDEODRIVER=dummy). A value the user set in the environment wins. When rendering is impossible
the error is one sentence naming what is missing (a SoftacError; the CLI exits with status 2).
Writing MP4s needs imageio and imageio-ffmpeg (`pip install 'softac[video]'`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from softac.errors import SoftacError

VIDEO_DIR = "videos"  # in a run directory
DEFAULT_FPS = 30  # for an environment without metadata["render_fps"]
GIF_MAX_FPS = 10
GIF_MAX_SIDE = 160
INSTALL_HINT = "pip install 'softac[video]'"


# ------------------------------------------------------------------------------------ rendering
def use_headless_defaults() -> None:
    """Render without a display: MUJOCO_GL=egl (Linux) and SDL's dummy video and audio drivers, unless set.

    Gymnasium's MuJoCo renderer reads MUJOCO_GL when it creates its OpenGL context (at the first
    `render()`), so this works even after `import mujoco`; pygame reads the SDL variables at `init`.
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame.init() otherwise asks ALSA for a sound card


def _import_mujoco() -> None:
    """Import MuJoCo (if installed) before softac.envs does: it loads the OpenGL library that MUJOCO_GL names
    at import, and one it cannot load becomes one sentence here rather than a traceback there."""
    if "mujoco" in sys.modules or importlib.util.find_spec("mujoco") is None:
        return
    try:
        import mujoco  # noqa: F401
    except Exception as exc:  # noqa: BLE001 -- e.g. AttributeError from PyOpenGL when libOSMesa is missing
        raise _mujoco_gl_error(os.environ.get("MUJOCO_GL", "").lower(),
                               f"{type(exc).__name__}: {_first_line(exc)}") from None


def make_render_env(cfg):
    """The environment of config `cfg` (its id and options) rendering "rgb_array" frames."""
    _import_mujoco()  # with the user's MUJOCO_GL, if any: ours is only needed by the renderer (below)
    use_headless_defaults()
    from softac.envs import make_config_env

    return make_config_env(cfg, render_mode="rgb_array")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _mujoco_gl_error(backend: str, detail: str) -> SoftacError:
    """MuJoCo could not start the OpenGL backend `backend` (MUJOCO_GL): one sentence naming its library."""
    if backend == "egl":
        return SoftacError(f"MuJoCo cannot render headless: EGL (libEGL, Debian package libegl1) is missing or "
                           f"unusable ({detail}); install it, or set MUJOCO_GL=osmesa with libosmesa6.")
    if backend == "osmesa":
        return SoftacError(f"MuJoCo cannot render with MUJOCO_GL=osmesa: OSMesa (libOSMesa, Debian package "
                           f"libosmesa6) is missing or unusable ({detail}); install it, or set MUJOCO_GL=egl "
                           "with libegl1.")
    if backend in ("glfw", "", "glx"):
        return SoftacError(f"MuJoCo cannot render with MUJOCO_GL={backend or 'glfw'}, which needs a display and "
                           f"GLFW ({detail}); set MUJOCO_GL=egl (libegl1) to render headless.")
    return SoftacError(f"MuJoCo cannot render with MUJOCO_GL={backend!r} ({detail}); set MUJOCO_GL=egl "
                       "(libegl1) or MUJOCO_GL=osmesa (libosmesa6).")


def _render_error(env, env_id: str, exc: Exception) -> SoftacError:
    """One sentence saying why `env` could not render, naming the missing system library where known."""
    detail = f"{type(exc).__name__}: {_first_line(exc)}"
    from softac.dmc import is_dmc_env

    if hasattr(env.unwrapped, "mujoco_renderer") or is_dmc_env(env):  # Gymnasium's MuJoCo environments, dm_control
        return _mujoco_gl_error(os.environ.get("MUJOCO_GL", "").lower(), detail)
    if (isinstance(exc, ImportError) and "pygame" in str(exc).lower()) or type(exc).__name__ == "DependencyNotInstalled":
        return SoftacError(f"{env_id} renders through pygame, which is not installed ({detail}); {INSTALL_HINT}.")
    if type(exc).__module__.startswith("pygame"):
        return SoftacError(f"{env_id} cannot render through pygame/SDL ({detail}); set SDL_VIDEODRIVER=dummy to "
                           "render without a display.")
    return SoftacError(f"{env_id} cannot render rgb_array frames ({detail}).")


def _drop_quietly(exc: BaseException) -> None:
    """Free the traceback of a renderer that failed to start, muting errors of finalizers it runs: Gymnasium's
    half-built OffScreenViewer reports an AttributeError from `__del__` when it is freed (after the one-line
    error, otherwise)."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        exc.__traceback__ = None
        gc.collect()
    finally:
        sys.unraisablehook = previous


def render(env, env_id: str) -> np.ndarray:
    """The current frame of `env` (made with render_mode="rgb_array") as uint8 [H, W, 3]."""
    try:
        frame = env.render()
    except Exception as exc:  # noqa: BLE001 -- whatever the renderer raises becomes one sentence
        error = _render_error(env, env_id, exc)
        _drop_quietly(exc)
        raise error from None
    if isinstance(frame, list):  # "rgb_array_list"-style renderers
        frame = frame[-1] if frame else None
    if frame is None:
        raise SoftacError(f"{env_id} returned no frame from render(); it does not support render_mode='rgb_array'.")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise SoftacError(f"{env_id} rendered a frame of shape {frame.shape}; videos need [height, width, 3].")
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame[:, :, :3]


def render_fps(env) -> float:
    """Frames per second of `env`'s videos: its metadata["render_fps"] (30 if it has none)."""
    fps = (getattr(env, "metadata", None) or {}).get("render_fps") or DEFAULT_FPS
    return float(fps)


def _require_writer() -> None:
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise SoftacError(f"Writing videos needs imageio and imageio-ffmpeg ({_first_line(exc)}); "
                          f"{INSTALL_HINT}.") from None


def check_video_support(cfg) -> None:
    """Fail now (SoftacError) rather than at the first video if `cfg`'s environment cannot be recorded here:
    the MP4 writer is importable and one frame renders."""
    _require_writer()
    env = make_render_env(cfg)
    try:
        env.reset(seed=0)
        render(env, cfg.env)
    finally:
        _close(env)


def _close(env) -> None:
    with contextlib.suppress(Exception):  # a renderer that failed to start may fail to close too
        env.close()


# ------------------------------------------------------------------------------------ writing
class _Mp4:
    """Frames streamed into an MP4 under a temporary name in the target's directory; `commit` renames it
    into place, `abort` removes it, so a video on disk is always complete."""

    def __init__(self, path: Path, fps: float):
        import imageio.v2 as imageio

        self.path = path
        self.tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
        # macro_block_size=2: keep the rendered size (imageio would pad 500x500 to 512x512 otherwise);
        # yuv420p (what players expect) needs even sides, which 2 also guarantees.
        self._writer = imageio.get_writer(str(self.tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                          pixelformat="yuv420p", macro_block_size=2, ffmpeg_log_level="error")
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        with warnings.catch_warnings():
            # The first frame starts ffmpeg (subprocess: fork, then exec at once; no Python runs in the child),
            # which JAX, being multithreaded, warns about on every fork.
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            self._writer.append_data(frame)
        self.frames += 1

    def commit(self) -> Path:
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def _remove_leftovers(directory: Path) -> None:
    """Temporary videos of a recording that was killed (their writer's process is gone)."""
    for path in directory.glob(".*.tmp-*.mp4"):
        pid = path.stem.rpartition(".tmp-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unused_path(directory: Path, stem: str, suffix: str = ".mp4") -> Path:
    """directory/stem.mp4, or stem-1.mp4, stem-2.mp4, ... whichever does not exist yet; the file is created
    empty (exclusively) so that a concurrent writer cannot take the same name."""
    k = 0
    while True:
        path = directory / (f"{stem}{suffix}" if k == 0 else f"{stem}-{k}{suffix}")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            k += 1


# ------------------------------------------------------------------------------------ episodes
def record_episodes(agent, out_dir: str | Path, episodes: int = 1, seed: int = 0,
                    max_steps: Optional[int] = None) -> tuple[np.ndarray, list[Path]]:
    """Run `episodes` deterministic episodes of `agent` (softac.evaluate.Agent) with rendering; episode i is
    reset with seed `seed + i` and written to `out_dir/episode-<i>.mp4` (reset frame + one per step).

    A file name already taken gets a suffix (episode-0-1.mp4, ...): nothing in `out_dir` is overwritten.
    `max_steps` ends an episode after that many steps (default: when the environment ends it).
    Returns (the episodes' returns [episodes], the paths written).
    """
    if episodes < 1:
        raise SoftacError(f"episodes must be positive, got {episodes}.")
    _require_writer()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SoftacError(f"The video directory {out_dir} exists and is not a directory.")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = agent.config
    returns, paths = np.zeros(episodes), []
    for i in range(episodes):
        env = make_render_env(cfg)
        path, video = _unused_path(out_dir, f"episode-{i}"), None
        try:
            obs, _ = env.reset(seed=seed + i)
            frame = render(env, cfg.env)
            video = _Mp4(path, render_fps(env))
            video.append(frame)
            steps, done = 0, False
            while not done and (max_steps is None or steps < max_steps):
                obs, reward, terminated, truncated, _ = env.step(agent.act(np.asarray(obs, np.float32),
                                                                           deterministic=True))
                returns[i] += float(reward)
                steps += 1
                done = terminated or truncated
                video.append(render(env, cfg.env))
            paths.append(video.commit())
        except BaseException:
            if video is not None:
                video.abort()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # the empty placeholder of this name
            raise
        finally:
            _close(env)
    return returns, paths


def record_training_videos(cfg, act: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int],
                           run_dirs: Sequence[Path], step: int) -> list[Path]:
    """One deterministic evaluation episode of every seed, written to `run_dir/videos/step-<step>.mp4`
    (and, with cfg.tensorboard, to TensorBoard): what the training loop calls every `video_every` steps.

    `act` maps observations [N, 1, obs_dim] to stored-form actions [N, 1, ...] (as in
    softac.evaluate.run_episodes); seed s's episode is reset with s + EVAL_SEED_OFFSET, like evaluation
    episode 0. All seeds step in lockstep, one policy call per step.
    """
    from softac.envs import action_spec
    from softac.loop_driver import EVAL_SEED_OFFSET

    _require_writer()
    envs, videos, gifs = [], [], []
    try:
        for run_dir in run_dirs:
            envs.append(make_render_env(cfg))
            directory = Path(run_dir) / VIDEO_DIR
            directory.mkdir(exist_ok=True)
            _remove_leftovers(directory)
        spec = action_spec(envs[0].action_space)
        obs = []
        for env, seed in zip(envs, seeds):
            first_obs, _ = env.reset(seed=seed + EVAL_SEED_OFFSET)
            obs.append(np.asarray(first_obs, np.float32))
            frame = render(env, cfg.env)
            videos.append(_Mp4(Path(run_dirs[len(videos)]) / VIDEO_DIR / f"step-{step}.mp4", render_fps(env)))
            videos[-1].append(frame)
            gifs.append(_GifFrames(render_fps(env)) if cfg.tensorboard else None)
            if gifs[-1] is not None:
                gifs[-1].add(frame)
        obs = np.stack(obs)
        running = np.ones(len(envs), bool)
        while running.any():
            actions = np.asarray(act(obs[:, None]))
            for n in np.flatnonzero(running):
                next_obs, _, terminated, truncated, _ = envs[n].step(spec.to_env(actions[n, 0]))
                obs[n] = next_obs
                frame = render(envs[n], cfg.env)
                videos[n].append(frame)
                if gifs[n] is not None:
                    gifs[n].add(frame)
                if terminated or truncated:
                    running[n] = False
        paths = [video.commit() for video in videos]
    except BaseException:
        for video in videos:
            video.abort()
        raise
    finally:
        for env in envs:
            _close(env)
    for run_dir, gif in zip(run_dirs, gifs):
        if gif is not None:
            gif.write(Path(run_dir) / VIDEO_DIR, step)
    return paths


# ------------------------------------------------------------------------------------ TensorBoard
class _GifFrames:
    """A reduced copy of a video's frames (at most GIF_MAX_FPS per second of episode time, at most
    GIF_MAX_SIDE pixels a side) written to TensorBoard as an animated GIF, the form TensorBoard shows
    videos in (what tensorboardX's add_video writes, without its moviepy dependency)."""

    def __init__(self, fps: float):
        self.stride = max(1, int(np.ceil(fps / GIF_MAX_FPS)))
        self.fps = fps / self.stride
        self.frames: list[np.ndarray] = []
        self._seen = 0

    def add(self, frame: np.ndarray) -> None:
        if self._seen % self.stride == 0:
            factor = max(1, int(np.ceil(max(frame.shape[:2]) / GIF_MAX_SIDE)))
            if factor > 1:  # mean over factor x factor blocks (edges cropped)
                h, w = (frame.shape[0] // factor) * factor, (frame.shape[1] // factor) * factor
                frame = frame[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
            self.frames.append(frame.astype(np.uint8))
        self._seen += 1

    def encode(self) -> bytes:
        import io

        from PIL import Image

        images = [Image.fromarray(f) for f in self.frames]
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / self.fps)), loop=0)
        return buffer.getvalue()

    def write(self, logdir: Path, step: int, tag: str = "eval/video") -> None:
        """Add the GIF to a new TensorBoard event file in `logdir` (its own run, `<run>/videos`, in TensorBoard)."""
        from tensorboardX import FileWriter
        from tensorboardX.proto.summary_pb2 import Summary

        height, width = self.frames[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=self.encode())
        writer = FileWriter(str(logdir), filename_suffix=f".step-{step}")
        try:
            writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        finally:
            writer.close()
