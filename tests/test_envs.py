"""Environment construction: MuJoCo's repeated model warnings are reported once, not once per env."""

import warnings

from softac import envs


def test_mujoco_model_warnings_are_reported_once_and_not_logged_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(envs, "_MUJOCO_WARNINGS_SEEN", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):  # Gymnasium's half_cheetah.xml uses the deprecated `settotalmass`
            envs.make_env("HalfCheetah-v5").close()
    mujoco_warnings = [w for w in caught if str(w.message).startswith("MuJoCo:")]
    assert len(mujoco_warnings) <= 1
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
