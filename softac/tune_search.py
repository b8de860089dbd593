"""The Optuna study as Ray Tune's searcher (imports Ray and Optuna: only `softac.optimize` uses it).

A module-level class, because Tune pickles its searcher with the experiment state, and `softac tune
--resume` restores the study's searcher from it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from softac.algos.search_space import Dimension
from softac.suggestion import config_changes, suggestion_label


class StudySearch(OptunaSearch):
    """Ray Tune's OptunaSearch, with what a softac study adds to it:
    - a suggestion carries its Optuna trial number (the trial's name and run directories: trial0007) and the
      config changes it makes, tied fields included (`softac.suggestion.config_changes`);
    - intermediate evaluations reach Optuna by env step (not by Tune's iteration count);
    - a trial that the scheduler stopped before `total_steps` is told PRUNED (its value is its last evaluation,
      as for a trial an Optuna pruner stops), one that finished is COMPLETE, and one whose worker failed for
      good (or whose value is not a number) is FAIL, so the database tells them apart as Optuna's own API does.
    """

    def __init__(self, dimensions: tuple[Dimension, ...], total_steps: int, **kwargs: Any):
        super().__init__(**kwargs)
        self._dimensions, self._total_steps = dimensions, total_steps

    def suggest(self, trial_id: str) -> Optional[dict]:
        params = super().suggest(trial_id)
        if params is None:
            return None
        number = self._ot_trials[trial_id].number
        return {"search": {"number": number, "params": params, "changes": config_changes(self._dimensions, params),
                           "label": suggestion_label(self._dimensions, params)}}

    def _told_already(self, trial_id: str) -> bool:
        """Whether the database holds this trial as ended: a restored experiment can restart a trial whose end
        the driver told Optuna after it last saved Tune's state (it was killed in between)."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return True
        if self._ot_study._storage.get_trial(self._ot_trials[trial_id]._trial_id).state.is_finished():
            self._completed_trials.add(trial_id)
            return True
        return False

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._told_already(trial_id):
            return
        value = result.get(self.metric)
        if value is not None and math.isfinite(value):
            self._ot_trials[trial_id].report(value, int(result["env_step"]))

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if self._told_already(trial_id):
            return
        ot_trial = self._ot_trials[trial_id]
        value = None if not result else result.get(self.metric)
        finite = value is not None and math.isfinite(value)
        try:
            if error or not finite:
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            elif int(result.get("env_step", 0)) < self._total_steps:
                # The result the scheduler stopped it on reaches the searcher here only (not as a result first).
                ot_trial.report(value, int(result["env_step"]))
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            else:
                self._ot_study.tell(ot_trial, value, state=TrialState.COMPLETE)
        except ValueError:  # a value Optuna refuses
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)
