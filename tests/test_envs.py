"""Environment construction: MuJoCo's repeated model warnings are reported once, not once per env."""

import warnings

import mujoco
import pytest

from softac import envs


@pytest.fixture
def no_mujoco_warning_handler(monkeypatch):
    """Start from MuJoCo's default warning handler and an empty `seen` set; restore both afterwards."""
    monkeypatch.setattr(envs, "_MUJOCO_WARNINGS_SEEN", set())
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(None)
    yield
    mujoco.set_mju_user_warning(previous)


def test_mujoco_model_warnings_are_reported_once_and_not_logged_to_the_working_directory(
        tmp_path, monkeypatch, no_mujoco_warning_handler):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so Python's own once-per-location filter cannot hide a repeat
        for _ in range(3):  # Gymnasium's half_cheetah.xml uses the deprecated `settotalmass`
            envs.make_env("HalfCheetah-v5").close()
    mujoco_warnings = [w for w in caught if str(w.message).startswith("MuJoCo:")]
    # make_env installs a handler that turns each distinct MuJoCo warning into one RuntimeWarning per
    # process: three constructions, the same model warning each time -> exactly one report.
    assert len(mujoco_warnings) == 1, [str(w.message) for w in mujoco_warnings]
    assert mujoco_warnings[0].category is RuntimeWarning
    assert "settotalmass" in str(mujoco_warnings[0].message)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
