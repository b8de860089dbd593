"""The documentation site builds in strict mode (a broken link or a missing API reference fails) and its pages
render in headless Chromium with their content; a screenshot of the home page is kept as an artifact
(`$SOFTAC_ARTIFACTS`, default `artifacts/` in the repository, git-ignored).

Skipped where the docs extra (mkdocs) or Debian's `chromium` is not installed; `.ci/run` installs both."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    return out


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page, expected", [
    ("index.html", ["Soft Actor-Critic", "softac train --preset pendulum"]),
    ("usage/index.html", ["Command line", "softac train --env HalfCheetah-v5"]),
    ("choosing/index.html", ["CrossQ", "Discrete actions"]),
    ("api/index.html", ["SACConfig", "load_agent", "AlgorithmSpec"]),
])
def test_a_page_renders_with_its_content(site, tmp_path, page, expected):
    assert (site / page).is_file()
    result = run_chromium(tmp_path, "--dump-dom", (site / page).as_uri())
    assert result.returncode == 0, result.stderr
    body = result.stdout.split("<body", 1)[1]
    text_shown = html.unescape(re.sub(r"<[^>]+>", "", body))  # the rendered DOM's text (code is split in spans)
    for text in expected:
        assert text in text_shown, f"{page} rendered without {text!r}"


def test_the_home_page_screenshot_is_not_blank(site, tmp_path):
    from matplotlib.image import imread

    artifacts = Path(os.environ.get("SOFTAC_ARTIFACTS", ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "docs-home.png"
    result = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", (site / "index.html").as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr
    pixels = imread(shot)
    assert pixels.shape[0] == 900 and pixels.shape[1] == 1280 and pixels.std() > 0.05
