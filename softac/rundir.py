"""The run directory on disk: its name and config, one writer at a time, atomic small files, and leftovers
of interrupted writes.

- A run directory per seed, `<env>__<algo>__seed<k>__<timestamp>` (or the run name) under `run_root`, made
  by `create_run_dirs` with the seed's config in `config.json` (`read_run_config` reads it back).

- One writer per run: the training process holds an advisory lock (`fcntl.flock`) on `.lock` in each
  run directory for the whole run and writes its pid into the file. A second writer fails at once
  with one sentence naming that pid. The kernel drops the lock when its process dies (even by
  kill -9), so a lock file left by a dead process is simply taken over.
- `write_text_atomic`: a small file (config.json) written under a temporary name, flushed to disk
  and renamed over the old one, so a reader sees the old or the new file, never a half-written one.
- `remove_leftovers`: temporary files and directories of a write that was interrupted (names start
  with a dot and contain `.tmp-`, `.new-` or `.old-`), removed by the next writer of the directory.
- `portable_name`: the part of a default run-directory name made from an environment id, in portable
  characters only (letters, digits, '-', '_', '.'), whatever the id (`dm_control/cheetah-run-v0`,
  `gymnax:Pendulum-v1`, `my_pkg.envs:Robot-v0`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import json
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional, Sequence

from softac.config import SACConfig
from softac.errors import SoftacError

CONFIG_NAME = "config.json"
LOCK_NAME = ".lock"
_NOT_PORTABLE = re.compile(r"[^A-Za-z0-9._-]+")
_LEFTOVER_MARKERS = (".tmp-", ".new-", ".old-")


def portable_name(text: str) -> str:
    """`text` as a file name of portable characters only (POSIX's portable file name set: letters, digits, '-',
    '_', '.'): every run of other characters becomes one '-' (so '/' and ':' do), leading dots and dashes are
    dropped (no hidden file, no option-like name), and a name with nothing left is '_'. A pure function:
    `dm_control/cheetah-run-v0` -> `dm_control-cheetah-run-v0`, `gymnax:Pendulum-v1` -> `gymnax-Pendulum-v1`."""
    name = _NOT_PORTABLE.sub("-", text).lstrip(".-")
    return name or "_"


def lock_holder(run_dir: str | Path) -> Optional[int]:
    """The pid of the process holding `run_dir`'s lock, or None if nobody holds it (never takes it)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> Optional[int]:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _holder_phrase(pid: Optional[int]) -> str:
    return f"process {pid}" if pid is not None else "another process"


def lock_run_dir(run_dir: str | Path) -> int:
    """Take `run_dir`'s writer lock and record this pid in it; returns the open descriptor (close it to release).

    SoftacError at once if another live process holds it.
    """
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise SoftacError(f"Cannot lock run directory {run_dir}: {exc.strerror}.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise SoftacError(f"Run directory {run_dir} is being written by {_holder_phrase(pid)} "
                              f"(it holds {path}); wait for it to finish or stop it first.") from None
        raise SoftacError(f"Cannot lock run directory {run_dir}: {exc.strerror}.") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid is only for the message of a refused second writer
    return fd


@contextlib.contextmanager
def locked_run_dirs(run_dirs: Sequence[str | Path]) -> Iterator[None]:
    """Hold the writer lock of every run directory (taken in order; all released on exit)."""
    fds: list[int] = []
    try:
        for run_dir in run_dirs:
            fds.append(lock_run_dir(run_dir))
        yield
    finally:
        for fd in fds:
            os.close(fd)


def is_leftover(name: str) -> bool:
    """True for the name of a temporary file or directory of an interrupted write."""
    return name.startswith(".") and any(marker in name for marker in _LEFTOVER_MARKERS)


def remove_leftovers(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files and directories of interrupted writes in `run_dir`; returns what was removed.

    Only call this while holding the directory's lock: then no other process is writing them.
    """
    removed = []
    for path in sorted(Path(run_dir).iterdir()):
        if not is_leftover(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (renames, new files) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_durably(path: str | Path, data: bytes) -> None:
    """Write `data` to a new file at `path` and flush it to disk (the caller renames it into place)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` by a file holding `text` atomically: readers see the old or the new content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_bytes_durably(tmp, text.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


# ------------------------------------------------------------------------------ names and config.json
def run_dir_name(cfg: SACConfig, seed: int, timestamp: str) -> str:
    """<env>__<algo>__seed<k>__<timestamp>, or <run_name>__seed<k> when a run name is given."""
    if cfg.run_name:
        return f"{cfg.run_name}__seed{seed}" if len(cfg.seed_list) > 1 else cfg.run_name
    return f"{portable_name(cfg.env)}__{cfg.algo}__seed{seed}__{timestamp}"


def named_run_dirs(cfg: SACConfig) -> list[Path]:
    """The run directories of a config with a `run_name` (one per seed), whether or not they exist yet."""
    if not cfg.run_name:
        raise ValueError("named_run_dirs needs a config with a run_name")
    return [Path(cfg.run_root) / run_dir_name(cfg, seed, "") for seed in cfg.seed_list]


def create_run_dirs(cfg: SACConfig) -> list[Path]:
    """New, empty run directories, one per seed, each with its seed's config.json; never reuses an existing
    directory."""
    root = Path(cfg.run_root)
    timestamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    names = [run_dir_name(cfg, seed, timestamp) for seed in cfg.seed_list]
    if cfg.run_name:
        taken = [n for n in names if (root / n).exists()]
        if taken:
            holder = lock_holder(root / taken[0])
            busy = f" and is being trained by process {holder}" if holder is not None else ""
            raise SoftacError(f"Run directory {root / taken[0]} already exists{busy}; choose another --run-name.")
    dirs = []
    for seed, name in zip(cfg.seed_list, names):
        path, suffix = root / name, 1
        try:
            while True:
                try:
                    path.mkdir(parents=True, exist_ok=False)
                    break
                except FileExistsError:
                    path, suffix = root / f"{name}-{suffix}", suffix + 1
            write_text_atomic(path / CONFIG_NAME, cfg.replace(seed=seed, seeds=None).to_json())
        except OSError as exc:
            raise SoftacError(f"Cannot create run directory {path}: {exc.strerror or exc}.") from None
        dirs.append(path)
    return dirs


def read_run_config(run_dir: str | Path) -> SACConfig:
    """The config saved in a run directory; SoftacError if the directory is not a softac run."""
    path = Path(run_dir) / CONFIG_NAME
    if not Path(run_dir).is_dir():
        raise SoftacError(f"Run directory {run_dir} does not exist.")
    if not path.is_file():
        raise SoftacError(f"{run_dir} is not a softac run directory ({CONFIG_NAME} is missing).")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return SACConfig.from_dict(data)
    except SoftacError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SoftacError(f"The config in {run_dir} is unreadable ({type(exc).__name__}: {exc}).") from None
