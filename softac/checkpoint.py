"""Checkpoints of one seed's run: everything the training loop needs to continue exactly, in files
that cannot run code when read.

A checkpoint is the directory `checkpoint/` in the run directory:

| file | holds | format |
| --- | --- | --- |
| `policy.msgpack` | the state fields that make up the policy (the agent's `policy_fields`: the actor's parameters, and CrossQ's running statistics); all that `eval` and `load_agent` read | flax.serialization msgpack |
| `agent.msgpack` | the rest of the agent state: critics, targets, optimiser states, log alpha, PRNG key, update count | flax.serialization msgpack |
| `replay.npz` | the replay buffer's filled part (truncated too; a checkpoint written before it was stored reads as no time-limit ends), write position, size and capacity | numpy .npz, read with allow_pickle=False |
| `loop.json` | env step, episode counters, the numpy Generator state, the environment's state (see softac.envs) | JSON; its arrays are in loop.npz |
| `loop.npz` | the arrays of the loop state: current observation, acting key, environment state arrays | numpy .npz, read with allow_pickle=False |
| `manifest.json` | format name and version, env step, size of every file above | JSON, written last |

msgpack is restored against the agent's own state structure (shapes checked), .npz files are read
with `allow_pickle=False` and JSON is plain data: no file of a checkpoint can make softac run code.
The `checkpoint.pkl` files of softac 0.1 are pickles, which can; they are refused, not read.

Atomic as a set: a save writes a new directory `.checkpoint.new-<pid>` (every file flushed to disk,
the manifest last), moves the old `checkpoint/` aside to `.checkpoint.old-<pid>`, renames the new one
into place and only then deletes the old one. A crash at any moment leaves a complete checkpoint:
`checkpoint/`, or (between the two renames) `.checkpoint.old-<pid>`, which readers fall back to and
`recover_interrupted_save` moves back. The next writer of the run removes the other leftovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import flax.serialization
import jax
import numpy as np

from softac.errors import SoftacError
from softac.rundir import fsync_dir

CHECKPOINT_DIR = "checkpoint"
LEGACY_PICKLE_NAME = "checkpoint.pkl"  # softac 0.1; refused
FORMAT_NAME = "softac checkpoint"
FORMAT_VERSION = 3  # 1 was softac 0.1's checkpoint.pkl; 2 held SAC's state before the algorithms had folders

MANIFEST = "manifest.json"
POLICY = "policy.msgpack"
AGENT = "agent.msgpack"
REPLAY = "replay.npz"
LOOP = "loop.json"
LOOP_ARRAYS = "loop.npz"
_ARRAY_REF = "__array__"  # in loop.json, {"__array__": key} stands for loop.npz[key]
_SCALAR_REF = "__scalar__"  # ... and {"__scalar__": key} for the numpy scalar loop.npz[key][()]
_REPLAY_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")
_REPLAY_OPTIONAL = ("truncated",)  # written since n-step returns; older checkpoints lack it (read as zeros)


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run directory's checkpoint lives (a directory)."""
    return Path(run_dir) / CHECKPOINT_DIR


def _test_hook(stage: str, path: Path) -> None:
    """Called during a save after the new files are on disk ("written") and after the old checkpoint was
    moved aside ("swapping"); tests replace it to kill the process at those moments."""


def _write_file(path: Path, write: Callable[[Any], None]) -> None:
    """Create `path`, fill it with `write(file)` and flush it to disk."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------------- saving
def save_checkpoint(run_dir: str | Path, agent_state: Any, buffer_state: dict, loop_state: dict,
                    policy_fields: tuple[str, ...] = ("actor_params",)) -> Path:
    """Write the checkpoint of one seed atomically as a set; returns its directory. `policy_fields`: the
    fields of the agent state that go to the policy file (the agent's `policy_fields`).

    An OSError (disk full, permissions) becomes a SoftacError; the previous checkpoint is kept.
    """
    run_dir = Path(run_dir)
    final = checkpoint_path(run_dir)
    new = run_dir / f".{CHECKPOINT_DIR}.new-{os.getpid()}"
    old = run_dir / f".{CHECKPOINT_DIR}.old-{os.getpid()}"
    state = flax.serialization.to_state_dict(agent_state)
    policy = {name: state.pop(name) for name in policy_fields}
    loop_json, loop_arrays = _split_arrays(loop_state)
    writers = {
        POLICY: lambda f: f.write(flax.serialization.msgpack_serialize(policy)),
        AGENT: lambda f: f.write(flax.serialization.msgpack_serialize(state)),
        REPLAY: lambda f: np.savez(f, **{k: np.asarray(buffer_state["data"][k]) for k in _REPLAY_FIELDS + tuple(
                                       k for k in _REPLAY_OPTIONAL if k in buffer_state["data"])},
                                   position=np.int64(buffer_state["position"]), size=np.int64(buffer_state["size"]),
                                   capacity=np.int64(buffer_state["capacity"])),
        LOOP: lambda f: f.write(json.dumps(loop_json).encode("utf-8")),
        LOOP_ARRAYS: lambda f: np.savez(f, **loop_arrays),
    }
    moved_aside = False
    try:
        if new.exists():
            shutil.rmtree(new)
        new.mkdir()
        for name, write in writers.items():
            _write_file(new / name, write)
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "step": int(loop_state["step"]),
                    "files": {name: (new / name).stat().st_size for name in writers}}
        _write_file(new / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode("utf-8")))
        fsync_dir(new)
        _test_hook("written", new)
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(final, old)
            moved_aside = True
            _test_hook("swapping", new)
        os.rename(new, final)
        fsync_dir(run_dir)
    except BaseException as exc:
        if moved_aside and not final.exists():
            with contextlib.suppress(OSError):
                os.rename(old, final)
        shutil.rmtree(new, ignore_errors=True)
        if isinstance(exc, OSError):
            raise SoftacError(f"Could not write the checkpoint in {run_dir} ({exc.strerror or exc}); "
                              "the previous checkpoint, if any, is kept.") from None
        raise
    if moved_aside:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _split_arrays(obj: Any, arrays: Optional[dict] = None, path: str = "") -> tuple[Any, dict]:
    """(JSON-able copy of `obj` with every numpy array replaced by a reference, {reference: array})."""
    arrays = {} if arrays is None else arrays
    if isinstance(obj, dict):
        return {str(k): _split_arrays(v, arrays, f"{path}.{k}")[0] for k, v in obj.items()}, arrays
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, arrays, f"{path}.{i}")[0] for i, v in enumerate(obj)], arrays
    if isinstance(obj, (np.ndarray, jax.Array)):
        arrays[path] = np.asarray(obj)
        return {_ARRAY_REF: path}, arrays
    if isinstance(obj, np.generic):
        arrays[path] = np.asarray(obj)
        return {_SCALAR_REF: path}, arrays
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, arrays
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint's loop state")


def _join_arrays(obj: Any, arrays: dict) -> Any:
    """Inverse of `_split_arrays`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_REF}:
            return arrays[obj[_ARRAY_REF]]
        if set(obj) == {_SCALAR_REF}:
            return arrays[obj[_SCALAR_REF]][()]
        return {k: _join_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, arrays) for v in obj]
    return obj


# ----------------------------------------------------------------------------------- reading
class _Unreadable(Exception):
    """Why a checkpoint file cannot be used (becomes the parenthesis of one SoftacError sentence)."""


def _committed_dir(run_dir: Path) -> Optional[Path]:
    """The complete checkpoint directory of a run: checkpoint/, or the one a crash left moved aside."""
    final = checkpoint_path(run_dir)
    if (final / MANIFEST).is_file():
        return final
    for old in sorted(run_dir.glob(f".{CHECKPOINT_DIR}.old-*")):
        if (old / MANIFEST).is_file():
            return old
    return None


def _refuse_missing(run_dir: Path) -> None:
    if (run_dir / LEGACY_PICKLE_NAME).exists():
        raise SoftacError(f"{run_dir} holds a {LEGACY_PICKLE_NAME} from softac 0.1, a Python pickle that could run "
                          "arbitrary code when loaded, so softac refuses to read it; retrain the run (or load it "
                          "with softac 0.1 only if you trust where it came from).")
    raise SoftacError(f"{run_dir} holds no checkpoint ({CHECKPOINT_DIR}/{MANIFEST} is missing).")


def _read_manifest(directory: Path) -> dict:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise _Unreadable(f"{MANIFEST}: {type(exc).__name__}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _Unreadable(f"{MANIFEST} is not a softac checkpoint manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise _Unreadable(f"format version {manifest.get('version')!r}; this softac reads version {FORMAT_VERSION}")
    if not isinstance(manifest.get("step"), int) or not isinstance(manifest.get("files"), dict):
        raise _Unreadable(f"{MANIFEST} lacks the step or the file list")
    return manifest


def _read(directory: Path, manifest: dict, name: str) -> bytes:
    _check_size(directory, manifest, name)
    try:
        return (directory / name).read_bytes()
    except OSError as exc:
        raise _Unreadable(f"{name}: {exc.strerror}") from None


def _check_size(directory: Path, manifest: dict, name: str) -> None:
    expected = manifest["files"].get(name)
    try:
        size = (directory / name).stat().st_size
    except OSError as exc:
        raise _Unreadable(f"{name}: {exc.strerror}") from None
    if size != expected:
        raise _Unreadable(f"{name} has {size} bytes, the manifest says {expected}")


def _read_npz(directory: Path, manifest: dict, name: str) -> dict[str, np.ndarray]:
    _check_size(directory, manifest, name)
    try:
        with np.load(directory / name, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise _Unreadable(f"{name} holds Python objects, which softac never loads") from None
        raise _Unreadable(f"{name}: {exc}") from None
    except Exception as exc:
        raise _Unreadable(f"{name}: {type(exc).__name__}") from None


def _restore_msgpack(template: Any, data: bytes, name: str) -> Any:
    try:
        restored = flax.serialization.msgpack_restore(data)
    except Exception as exc:
        raise _Unreadable(f"{name}: {type(exc).__name__}") from None
    try:
        state = flax.serialization.from_state_dict(template, restored)
    except Exception:
        raise _Unreadable(f"{name} does not match this run's networks") from None
    leaves, expected = jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(template)
    if len(leaves) != len(expected) or any(
            np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype for a, b in zip(leaves, expected)):
        raise _Unreadable(f"{name} does not match this run's networks")
    return state


def _open(run_dir: str | Path) -> tuple[Path, Path, dict]:
    run_dir = Path(run_dir)
    directory = _committed_dir(run_dir)
    if directory is None:
        _refuse_missing(run_dir)
    try:
        return run_dir, directory, _read_manifest(directory)
    except _Unreadable as exc:
        raise SoftacError(f"The checkpoint in {run_dir} is unreadable ({exc}).") from None


def _unreadable(run_dir: Path, exc: Exception) -> SoftacError:
    return SoftacError(f"The checkpoint in {run_dir} is unreadable ({exc}).")


def read_checkpoint_policy(run_dir: str | Path, agent_state_template: Any,
                           policy_fields: tuple[str, ...] = ("actor_params",)) -> Any:
    """The agent state template with only its `policy_fields` read from a run's checkpoint (reads
    policy.msgpack and the manifest, nothing else); the other fields are the template's."""
    run_dir, directory, manifest = _open(run_dir)
    template = flax.serialization.to_state_dict(agent_state_template)
    try:
        policy = _restore_msgpack({name: template[name] for name in policy_fields},
                                  _read(directory, manifest, POLICY), POLICY)
    except _Unreadable as exc:
        raise _unreadable(run_dir, exc) from None
    return flax.serialization.from_state_dict(agent_state_template, {**template, **policy})


def read_checkpoint_agent(run_dir: str | Path, agent_state_template: Any,
                          policy_fields: tuple[str, ...] = ("actor_params",)) -> Any:
    """The agent state of a run's checkpoint (policy.msgpack and agent.msgpack; not the replay buffer)."""
    run_dir, directory, manifest = _open(run_dir)
    template = flax.serialization.to_state_dict(agent_state_template)
    policy_template = {name: template.pop(name) for name in policy_fields}
    try:
        policy = _restore_msgpack(policy_template, _read(directory, manifest, POLICY), POLICY)
        rest = _restore_msgpack(template, _read(directory, manifest, AGENT), AGENT)
        return flax.serialization.from_state_dict(agent_state_template, {**rest, **policy})
    except _Unreadable as exc:
        raise _unreadable(run_dir, exc) from None


def load_checkpoint(run_dir: str | Path, agent_state_template: Any,
                    policy_fields: tuple[str, ...] = ("actor_params",)) -> tuple[Any, dict, dict]:
    """(agent_state, buffer_state, loop_state) of a run directory; SoftacError if there is none or it is unreadable."""
    agent_state = read_checkpoint_agent(run_dir, agent_state_template, policy_fields)
    run_dir, directory, manifest = _open(run_dir)
    try:
        replay = _read_npz(directory, manifest, REPLAY)
        buffer_state = _buffer_state(replay)
        try:
            loop_json = json.loads(_read(directory, manifest, LOOP).decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise _Unreadable(f"{LOOP}: {type(exc).__name__}") from None
        try:
            loop_state = _join_arrays(loop_json, _read_npz(directory, manifest, LOOP_ARRAYS))
        except (KeyError, TypeError, IndexError):
            raise _Unreadable(f"{LOOP} refers to arrays that {LOOP_ARRAYS} does not hold") from None
        if not isinstance(loop_state, dict) or loop_state.get("step") != manifest["step"]:
            raise _Unreadable(f"{LOOP} disagrees with the manifest's step")
    except _Unreadable as exc:
        raise _unreadable(run_dir, exc) from None
    return agent_state, buffer_state, loop_state


def _buffer_state(replay: dict[str, np.ndarray]) -> dict:
    missing = [k for k in _REPLAY_FIELDS + ("position", "size", "capacity") if k not in replay]
    if missing:
        raise _Unreadable(f"{REPLAY} lacks {', '.join(missing)}")
    try:
        position, size, capacity = (int(replay[k]) for k in ("position", "size", "capacity"))
    except (TypeError, ValueError):
        raise _Unreadable(f"{REPLAY} has a malformed position, size or capacity") from None
    fields = _REPLAY_FIELDS + tuple(k for k in _REPLAY_OPTIONAL if k in replay)
    if not (0 <= size <= capacity and 0 <= position < max(capacity, 1)) or any(
            replay[k].shape[:1] != (size,) or replay[k].dtype.kind != "f" for k in fields):
        raise _Unreadable(f"{REPLAY} has inconsistent sizes")
    data = {k: replay[k] for k in fields}
    data.setdefault("truncated", np.zeros(size, np.float32))
    return {"data": data, "position": position, "size": size, "capacity": capacity}


def checkpoint_step(run_dir: str | Path) -> Optional[int]:
    """The env step of a run directory's checkpoint (read from its manifest only), or None if it has none or it is unreadable."""
    directory = _committed_dir(Path(run_dir))
    if directory is None:
        return None
    try:
        return _read_manifest(directory)["step"]
    except _Unreadable:
        return None


def recover_interrupted_save(run_dir: str | Path) -> None:
    """Put back the checkpoint a crash left moved aside (between the two renames of a save).

    Call only while holding the run directory's lock; `softac.rundir.remove_leftovers` then clears the rest.
    """
    run_dir = Path(run_dir)
    final = checkpoint_path(run_dir)
    if final.exists():
        return
    directory = _committed_dir(run_dir)
    if directory is not None and directory != final:
        os.rename(directory, final)
        fsync_dir(run_dir)
