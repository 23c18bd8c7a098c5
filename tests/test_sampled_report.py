"""A sampled study's report without training: Optuna's figures of its search trials alone,
the best confirmed configuration's curves from its confirm runs alone, a ``stage`` column in
the per-trial CSV, and an export that never takes a search run for a confirmed replicate.

Real studies in temporary SQLite files, run by the real worker loop and Optuna's random
sampler, with an objective that returns a number instead of training, and stores a label
where a Keras model would store itself. Run with ``pytest tests/test_sampled_report.py -q``.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import upload_artifact

from search import definition
from search.errors import SearchError
from search.results import csv_files, export, figures, plotting, search_figures
from search.study import artifact_store, lifecycle, points, stages
from search.worker import loop
from tests.helpers import scratch_storage

SAMPLED = """\
[model]
build = "x:y"

[search_space]
learning_rate = {{low = 0.001, high = 0.1, log = true}}
units = {{low = 8, high = 64}}

[search]
sampler = "random"
trials = 6
confirm = {confirm}

[training]
repeats = 2
"""
TRIALS, REPEATS = 6, 2
SEARCH_BONUS = 0.05  # a search run's luck: its value is above what its configuration delivers
SAMPLED_FIGURES = {"best_point_curves.png", search_figures.HISTORY, search_figures.SLICE,
                   search_figures.IMPORTANCES}


class Scores:
    """A value from the configuration (best near learning rate 0.01), higher on a search run
    and a little higher on each confirm replicate; a two-epoch history ending at it; and a
    label stored as the trial's model, naming the stage and unit that trained it."""

    def __init__(self, artifacts: Path) -> None:
        self.location = str(artifacts)
        self.store = artifact_store.open_store(self.location)

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        value = 0.9 - abs(math.log10(trial.params["learning_rate"]) + 2) / 10 \
            + trial.params["units"] / 10_000
        value += SEARCH_BONUS if unit.stage == points.SEARCH_STAGE else 0.002 * unit.replicate
        trial.set_user_attr(points.HISTORY, {
            "accuracy": [value - 0.04, value + 0.01], "val_accuracy": [value - 0.05, value],
            "loss": [1.2 - value, 1.1 - value], "val_loss": [1.3 - value, 1.2 - value]})
        with tempfile.TemporaryDirectory() as folder:
            model = Path(folder) / f"trial-{trial.number}-model.keras"
            model.write_text(f"{unit.stage} {unit.id}")
            trial.set_user_attr(points.MODEL_ARTIFACT, upload_artifact(
                artifact_store=self.store, file_path=str(model), study_or_trial=trial))
        return value

    def forget(self, unit: points.Unit) -> None:
        pass


class _Enough(Exception):
    pass


def run(folder: Path, confirm: int = 2, trials: int | None = None) -> optuna.Study:
    """Run the study in ``folder``, to its end or through its first ``trials`` trials (0:
    open it only)."""
    storage = scratch_storage(f"sqlite:///{folder}/sampled.db")
    study = lifecycle.open_study(storage, definition.parse(
        SAMPLED.format(confirm=confirm), "sampled", "sampled.toml"))
    if trials == 0:
        return study
    ended: list[int] = []

    def stop(trial: optuna.trial.FrozenTrial) -> None:
        ended.append(trial.number)
        if len(ended) == trials:
            raise _Enough

    try:
        loop.work(storage, study, Scores(folder / "artifacts"), on_trial_end=stop)
    except _Enough:
        pass
    return study


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[optuna.Study, Path]:
    """A finished sampled study (6 search trials, 2 configurations confirmed twice each) and
    its artifact folder; shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("finished")
    return run(folder), folder / "artifacts"


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Each figure the report saves, by file name, as it was when saved."""
    found: dict[str, object] = {}
    save = plotting.save

    def keep(figure, path: Path) -> Path:
        found[path.name] = figure
        return save(figure, path)

    monkeypatch.setattr(plotting, "save", keep)
    return found


def by_stage(study: optuna.Study, stage: str) -> list[optuna.trial.FrozenTrial]:
    return [trial for trial in study.get_trials() if stages.stage_of(trial) == stage]


def test_a_sampled_study_draws_its_search_stage_and_its_best_confirmed_curves(
        finished, tmp_path: Path, drawn) -> None:
    study, _ = finished
    written = figures.write_all(study, tmp_path)
    assert {path.name for path in written} == SAMPLED_FIGURES
    assert {path.name for path in tmp_path.iterdir()} == SAMPLED_FIGURES  # no grid figures
    # Optuna's history shows the six search values, not the confirm runs'.
    search = by_stage(study, points.SEARCH_STAGE)
    history = drawn[search_figures.HISTORY].axes[0].collections[0].get_offsets()
    assert sorted(history[:, 1]) == pytest.approx(sorted(t.value for t in search))
    assert "search stage's 6 complete trial" in drawn[search_figures.HISTORY].get_suptitle()
    # The best curves are the best confirmed configuration's two confirm runs, never the
    # search run that chose it (same params, replicate 0, a higher value).
    confirm = by_stage(study, points.CONFIRM_STAGE)
    best = max(confirm, key=lambda t: t.value)
    runs = [t for t in confirm if t.params == best.params]
    lines = sorted((line.get_label(), list(line.get_ydata()))
                   for line in drawn["best_point_curves.png"].axes[0].get_lines()
                   if line.get_label().startswith("replicate"))
    assert lines == sorted((f"replicate {t.user_attrs[points.REPLICATE] + 1}",
                            t.user_attrs[points.HISTORY]["val_accuracy"]) for t in runs)


@pytest.mark.parametrize(("trials", "expected"), [
    (0, set()),
    (1, {search_figures.HISTORY, search_figures.SLICE}),  # one value has no importance
    (3, {search_figures.HISTORY, search_figures.SLICE, search_figures.IMPORTANCES}),
])
def test_search_figures_wait_for_the_trials_they_need(trials, expected, tmp_path) -> None:
    study = run(tmp_path, trials=trials)
    written = figures.write_all(study, tmp_path / "report")
    assert {path.name for path in written} == expected  # nothing confirmed: no best curves


def test_the_trials_csv_names_each_rows_stage(finished) -> None:
    study, _ = finished
    rows = list(csv.DictReader(io.StringIO(csv_files.trials_csv(study))))
    assert [row["stage"] for row in rows] == ["search"] * TRIALS + ["confirm"] * 2 * REPEATS
    assert [row["replicate"] for row in rows[TRIALS:]] == ["0", "1", "0", "1"]
    values = {float(row["val_accuracy"]) for row in rows}
    assert values == {trial.value for trial in study.get_trials()}


def test_a_search_unit_not_sampled_yet_has_blank_params(tmp_path: Path) -> None:
    study = run(tmp_path, trials=1)
    rows = list(csv.DictReader(io.StringIO(csv_files.trials_csv(study))))
    assert len(rows) == TRIALS and rows[0]["learning_rate"] and rows[0]["units"]
    assert all(row["learning_rate"] == row["units"] == "" for row in rows[1:])
    assert {row["state"] for row in rows[1:]} == {points.PENDING}


def test_export_takes_a_confirm_run_never_the_search_run(finished, tmp_path: Path) -> None:
    study, folder = finished
    exported = export.export_best_model(study, tmp_path / "best.keras", folder)
    trial = study.get_trials()[exported.trial_number]
    assert stages.stage_of(trial) == points.CONFIRM_STAGE
    # Two replicates are equally far from their mean: the typical one is replicate 0, which
    # the search run that chose the configuration also is.
    assert exported.replicate == 0 and exported.replicates == REPEATS
    assert (tmp_path / "best.keras").read_text().startswith("confirm ")
    assert export._trial_of(study, exported.params, 0).number == trial.number
    assert "replicate 1 of 2" in exported.line()


def test_a_study_that_confirms_nothing_exports_its_best_search_run(tmp_path: Path) -> None:
    study = run(tmp_path, confirm=0)
    exported = export.export_best_model(study, tmp_path / "best.keras", tmp_path / "artifacts")
    best = max(study.get_trials(), key=lambda t: t.value)
    assert exported.trial_number == best.number and exported.params == best.params
    unit = best.system_attrs[points.UNIT][0]
    assert (tmp_path / "best.keras").read_text() == f"search {unit}"
    line = exported.line()
    assert "one unconfirmed search run, the best of 6" in line and "\n" not in line
    assert "closest to the point's mean" not in line


def test_an_unconfirmed_study_has_nothing_to_export_yet(tmp_path: Path) -> None:
    study = run(tmp_path, trials=TRIALS)  # the search ended; no confirm run has
    with pytest.raises(SearchError) as raised:
        export.export_best_model(study, tmp_path / "best.keras", tmp_path / "artifacts")
    assert "no confirmed configuration with a complete trial yet" in str(raised.value)
    assert "\n" not in str(raised.value) and not (tmp_path / "best.keras").exists()
