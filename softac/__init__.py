"""softac: Soft Actor-Critic (Haarnoja et al. 2018) in JAX.

    from softac import SACConfig, train, load_agent
    run_dirs = train(SACConfig(env="Pendulum-v1", total_steps=8000, learning_rate=1e-3, learning_starts=1000))
    agent = load_agent(run_dirs[0])
    action = agent.act(obs, deterministic=True)
"""

from softac.callbacks import Callback, EvaluationEvent
from softac.config import PRESETS, SACConfig, preset
from softac.errors import SoftacError, TrainingInterrupted
from softac.evaluate import Agent, load_agent
from softac.study import resume_sweep, sweep
from softac.train import resume, train

__version__ = "0.1.0"

__all__ = ["Agent", "Callback", "EvaluationEvent", "PRESETS", "SACConfig", "SoftacError", "TrainingInterrupted",
           "load_agent", "preset", "resume", "resume_sweep", "sweep", "train"]
