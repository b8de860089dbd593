"""softac: Soft Actor-Critic (Haarnoja et al. 2018) in JAX.

    from softac import SACConfig, train, load_agent
    run_dirs = train(SACConfig(env="Pendulum-v1", total_steps=8000, learning_rate=1e-3, learning_starts=1000))
    agent = load_agent(run_dirs[0])
    action = agent.act(obs, deterministic=True)

The public names are imported on first use (PEP 562), so `import softac`, and the command line's --help
and argument errors, import no JAX.
"""

import importlib as _importlib
import sys as _sys
import types as _types
import typing as _typing

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_PUBLIC = {
    "Agent": "softac.evaluate",
    "Callback": "softac.callbacks",
    "EvaluationEvent": "softac.callbacks",
    "PRESETS": "softac.config",
    "SACConfig": "softac.config",
    "SoftacError": "softac.errors",
    "TrainingInterrupted": "softac.errors",
    "load_agent": "softac.evaluate",
    "preset": "softac.config",
    "resume": "softac.train",
    "resume_sweep": "softac.study",
    "resume_tune": "softac.optimize",
    "sweep": "softac.study",
    "train": "softac.train",
    "tune": "softac.optimize",
}

__all__ = ["Agent", "Callback", "EvaluationEvent", "PRESETS", "SACConfig", "SoftacError", "TrainingInterrupted",
           "load_agent", "preset", "resume", "resume_sweep", "resume_tune", "sweep", "train", "tune"]

if _typing.TYPE_CHECKING:
    from softac.callbacks import Callback, EvaluationEvent
    from softac.config import PRESETS, SACConfig, preset
    from softac.errors import SoftacError, TrainingInterrupted
    from softac.evaluate import Agent, load_agent
    from softac.optimize import resume_tune, tune
    from softac.study import resume_sweep, sweep
    from softac.train import resume, train


def __getattr__(name: str) -> object:
    """A public name, imported from its module the first time it is asked for."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'softac' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups find it without this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """The type of this module: `softac.train` is the function `train` (as when this file imported it eagerly),
    also after the submodule softac.train is imported: the import system then sets the submodule as the
    package's attribute `train`, and that assignment is ignored."""

    @property
    def train(self):
        return _importlib.import_module("softac.train").train

    @train.setter
    def train(self, submodule) -> None:
        pass


_sys.modules[__name__].__class__ = _Package
