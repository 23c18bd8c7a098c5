"""optuna-dashboard on a real finished study, checked in headless Chromium.

A tiny study (2 grid points, 2 epochs) runs once for the module; ``python -m search.dashboard``
serves it on a free loopback port; Playwright drives Debian's ``/usr/bin/chromium``. The
screenshots land in the test's tmp_path and in reports/screenshots/ (git-ignored) for CI to
keep.
"""

from __future__ import annotations

import csv
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from search import run
from search.study.optuna_internals import trial_id
from tests.conftest import write_definition

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "reports" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
EPOCHS = 2


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """studies dir holding tiny.toml, its finished study tiny.db and tiny.artifacts/."""
    folder = tmp_path_factory.mktemp("dashboard")
    write_definition(folder, "tiny", epochs=EPOCHS)
    assert run.main(["--study", "tiny", "--studies-dir", str(folder),
                     "--data-dir", str(mnist_dir), "--workers", "1"]) == 0
    return folder


def _storage(folder: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{folder}/tiny.db")


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=_storage(folder))


def test_every_finished_trial_carries_its_curves_history_model_and_note(finished: Path) -> None:
    storage = _storage(finished)
    study = optuna.load_study(study_name="tiny", storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        metas = {meta.filename.split("-", 2)[2]: meta
                 for meta in get_all_artifact_meta(trial, storage=storage)}
        names = {meta.filename for meta in metas.values()}
        assert names == {f"trial-{trial.number}-{kind}"
                         for kind in ("curves.png", "history.csv", "model.keras")}
        figure = finished / "tiny.artifacts" / metas["curves.png"].artifact_id
        assert figure.read_bytes().startswith(b"\x89PNG")
        history = finished / "tiny.artifacts" / metas["history.csv"].artifact_id
        rows = list(csv.DictReader(history.read_text().splitlines()))
        assert [float(row["val_accuracy"]) for row in rows] == \
            trial.user_attrs["history"]["val_accuracy"]
        assert len(rows) == EPOCHS
        note = optuna_dashboard.get_note(optuna.Trial(study, trial_id(trial)))
        assert metas["curves.png"].artifact_id in note
    study_note = optuna_dashboard.get_note(study)
    assert "2 of 2 grid points complete" in study_note
    assert f"mean validation accuracy {study.best_value:.4f}" in study_note
    assert study.metric_names == ["val_accuracy"]


def test_a_fresh_start_discards_the_old_trials_figures(tmp_path: Path, mnist_dir: Path) -> None:
    write_definition(tmp_path, "one", learning_rates=(0.01,), epochs=1)
    command = ["--study", "one", "--studies-dir", str(tmp_path), "--data-dir", str(mnist_dir),
               "--workers", "1"]
    assert run.main(command) == 0
    def files() -> set[Path]:  # the finished trial's checkpoints are gone: only its files
        return {path for path in (tmp_path / "one.artifacts").rglob("*") if path.is_file()}

    old = files()
    assert len(old) == 3  # the one trial's curves, history and model
    assert run.main([*command, "--fresh"]) == 0
    new = files()
    assert len(new) == 3 and not old & new


def test_dashboard_on_a_missing_study_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    write_definition(tmp_path, "tiny")
    result = subprocess.run([sys.executable, "-m", "search.dashboard", "--study", "tiny",
                             "--studies-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "tiny.db does not exist; run python -m search.run --study tiny first" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]


def _read_url(process: subprocess.Popen, timeout: float = 120) -> str:
    """The URL the dashboard prints once it listens; fail if it exits or stays silent."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=1):
            line = process.stdout.readline()
            found = re.search(r"http://\S+", line)
            if found:
                return found.group(0)
        if process.poll() is not None:
            raise AssertionError(f"dashboard exited {process.returncode}: "
                                 f"{process.stderr.read()}")
    raise AssertionError("the dashboard printed no URL")


@pytest.fixture()
def dashboard(finished: Path) -> Iterator[str]:
    """The study page's URL, served by the real command on a port the system picks."""
    process = subprocess.Popen(
        [sys.executable, "-m", "search.dashboard", "--study", "tiny", "--studies-dir",
         str(finished), "--port", "0"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield _read_url(process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _require_browser() -> None:
    """CI installs Chromium and must run this test; a machine without it may skip."""
    missing = None if CHROMIUM.exists() else f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package is missing (pip install -e '.[dev]')"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


def test_browser_shows_the_study_its_trials_and_a_trial_figure(
        finished: Path, dashboard: str, tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    assert dashboard.startswith("http://127.0.0.1:"), "the default must be loopback only"
    study = _study(finished)
    best = study.best_trial
    root = dashboard.split("/dashboard/")[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{root}/dashboard")
            # The study list links each study by name to its page.
            study_link = page.get_by_role("link", name=re.compile(r"\btiny\b"))
            expect(study_link).to_have_attribute("href", dashboard.removeprefix(root),
                                                 timeout=30_000)

            page.goto(dashboard)
            expect(page.get_by_text("Intermediate values")).to_be_visible(timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=tmp_path / "dashboard-study.png", full_page=True)

            page.goto(f"{dashboard}/trials?numbers={best.number}")
            expect(page.get_by_text("2 Trials")).to_be_visible(timeout=30_000)
            for number in (0, 1):
                expect(page.get_by_text(f"Trial {number}", exact=True).first).to_be_visible()
            figure = page.get_by_role("img", name=f"trial-{best.number}-curves.png")
            expect(figure).to_be_visible()
            expect(page.get_by_text(f"trial-{best.number}-history.csv")).to_be_visible()
            page.wait_for_load_state("networkidle")
            # The image was served from the artifact store, not just listed.
            assert figure.evaluate("image => image.complete && image.naturalWidth") > 0
            # The trial page scrolls inside its own pane, and the stored history widens it:
            # a large viewport shows it all.
            page.set_viewport_size({"width": 2100, "height": 1500})
            page.screenshot(path=tmp_path / "dashboard-trial.png")
        finally:
            browser.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in ("dashboard-study.png", "dashboard-trial.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        shutil.copy(tmp_path / name, SCREENSHOTS / name)
