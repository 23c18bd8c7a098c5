"""The best model in hand: every complete trial stores its final model, and the export picks
the best point's typical replicate.

The fast tests run real studies in temporary SQLite through the real worker loop and the
real ``TrialArtifacts`` hook, with an objective that trains nothing and a stand-in that
saves a label where a Keras model would save itself. The slow one trains a tiny study and
checks that the exported file, loaded by Keras, scores the test accuracy stored on its trial.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.trial import TrialState

from search import definition, report
from search.errors import DiskFull, SearchError
from search.results import artifacts, export
from search.study import lifecycle, points
from search.study.optuna_internals import trial_id
from search.study.storage import open_storage
from search.worker import loop

GRID_TOML = """\
[search_space]
learning_rate = [0.001, 0.01]
batch_size = [32]

[training]
epochs = 1
hidden_units = [8]
validation_size = 10
seed = 0
repeats = 3
"""
# Validation accuracy per (learning rate, replicate). The best point (0.01) has mean 0.9267:
# replicate 2 (0.92) is the typical one, replicate 1 (0.96) the luckiest.
VALIDATION = {(0.001, 0): 0.80, (0.001, 1): 0.81, (0.001, 2): 0.82,
              (0.01, 0): 0.90, (0.01, 1): 0.96, (0.01, 2): 0.92}
# Test accuracy would pick replicate 0: the choice must not look at it.
TEST = {0: 0.99, 1: 0.50, 2: 0.60}


class Labelled:
    """Stands in for a Keras model: all the hook asks of one is ``save(path)``."""

    def __init__(self, label: str) -> None:
        self.label = label

    def save(self, path: Path) -> None:
        Path(path).write_text(self.label)


class NoRoom(Labelled):
    """A model whose file meets a full disk."""

    def save(self, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))


class Scores:
    """An objective that trains nothing: fixed accuracies, then the real on_finish hook."""

    def __init__(self, on_finish: artifacts.TrialArtifacts | None,
                 model: type[Labelled] = Labelled) -> None:
        self.on_finish, self.model = on_finish, model

    def __call__(self, trial: optuna.Trial, unit: points.Unit) -> float:
        rate = trial.suggest_categorical("learning_rate", [0.001, 0.01])
        trial.suggest_categorical("batch_size", [32])
        value = VALIDATION[(rate, unit.replicate)]
        trial.set_user_attr("history", {"loss": [1.0], "accuracy": [value],
                                        "val_loss": [1.0], "val_accuracy": [value]})
        trial.set_user_attr("test_accuracy", TEST[unit.replicate])
        if self.on_finish is not None:
            self.on_finish(trial, self.model(f"lr={rate} replicate={unit.replicate}"))
        return value

    def forget(self, unit: points.Unit) -> None:
        pass


def run(storage, root: Path | None) -> optuna.Study:
    study = lifecycle.open_study(storage, definition.parse(GRID_TOML, "grid", "grid.toml"))
    hook = artifacts.TrialArtifacts(root) if root is not None else None
    loop.work(storage, study, Scores(hook))
    return study


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A finished study whose trials stored their models: (storage, study, artifact folder).

    Shared by the tests that only read it (each run draws six figures)."""
    folder = tmp_path_factory.mktemp("stored")
    opened = open_storage(f"sqlite:///{folder}/grid.db")
    yield opened, run(opened, folder / "artifacts"), folder / "artifacts"
    opened.rdb.engine.dispose()


def one_line(raised: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("validation", "expected"), [
    ({0: 0.90, 1: 0.96, 2: 0.92}, 2),  # the typical replicate, not the luckiest
    ({0: 0.5, 1: 0.7}, 0),  # two are always equally far from their mean: the lower
    ({0: 0.1, 1: 0.3}, 0),  # ... even where rounding makes 0.3 - 0.2 < 0.2 - 0.1
    ({3: 0.8, 1: 0.9, 2: 0.7}, 3),  # exactly the mean
    ({4: 0.75}, 4),
])
def test_the_typical_replicate_is_the_closest_to_the_mean(validation, expected) -> None:
    assert export.typical_replicate(validation) == expected


def test_every_complete_trial_stores_its_model_and_names_it_in_its_note(stored) -> None:
    storage, study, folder = stored
    store = optuna.artifacts.FileSystemArtifactStore(folder)
    for trial in study.get_trials():
        assert trial.state == TrialState.COMPLETE
        artifact_id = trial.user_attrs[points.MODEL_ARTIFACT]
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage.rdb)
        names = {meta.artifact_id: meta.filename for meta in metas}
        assert names[artifact_id] == f"trial-{trial.number}-model.keras"
        with store.open_reader(artifact_id) as reader:
            assert reader.read().decode().endswith(f"replicate={trial.user_attrs['replicate']}")
        note = optuna_dashboard.get_note(optuna.Trial(study, trial_id(trial)))
        assert f"trial-{trial.number}-model.keras" in note and artifact_id in note


def test_export_writes_the_best_points_typical_replicate(stored, tmp_path: Path) -> None:
    _, study, folder = stored
    exported = export.export_best_model(study, tmp_path / "best.keras", folder)
    assert (tmp_path / "best.keras").read_text() == "lr=0.01 replicate=2"
    assert (exported.params, exported.replicate, exported.replicates) == \
        ({"learning_rate": 0.01, "batch_size": 32}, 2, 3)
    assert exported.validation_accuracy == 0.92 and exported.test_accuracy == 0.60
    assert exported.mean_validation_accuracy == pytest.approx((0.90 + 0.96 + 0.92) / 3)
    trial = study.get_trials()[exported.trial_number]
    assert trial.params["learning_rate"] == 0.01 and trial.user_attrs["replicate"] == 2
    line = exported.line()
    assert "\n" not in line and f"trial {exported.trial_number}" in line
    assert "replicate 3 of 3" in line and "0.9200" in line and "0.6000" in line
    # An existing file is replaced whole; nothing is left beside it.
    export.export_best_model(study, tmp_path / "best.keras", folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]


def test_a_model_that_could_not_be_stored_costs_the_file_not_the_trial(
        storage, tmp_path: Path) -> None:
    blocked = tmp_path / "artifacts"
    blocked.write_text("a file where the artifact folder should be")
    study = run(storage, blocked)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert all(points.MODEL_ARTIFACT not in t.user_attrs for t in trials)
    assert all(str(blocked) in t.user_attrs[points.MODEL_ERROR] for t in trials)
    with pytest.raises(SearchError) as raised:
        export.export_best_model(study, tmp_path / "best.keras", blocked)
    one_line(raised, "has no stored model", "could not be stored", str(blocked))
    assert not (tmp_path / "best.keras").exists()


@pytest.mark.slow  # six models saved, twice
def test_a_full_disk_stops_the_run_instead_of_costing_a_model(storage, tmp_path: Path) -> None:
    """The next checkpoint would fail too, and a trial without its model is never exported:
    the run stops in one line, the trial costs no attempt, and the rerun stores its model."""
    study = lifecycle.open_study(storage, definition.parse(GRID_TOML, "grid", "grid.toml"))
    hook = artifacts.TrialArtifacts(tmp_path / "artifacts")
    with pytest.raises(DiskFull) as raised:
        loop.work(storage, study, Scores(hook, NoRoom))
    one_line(raised, f"temporary folder {tempfile.gettempdir()}: the disk is full (",
             " free of ", "TMPDIR", "run the same command to resume")
    [trial] = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure"] == "interrupted: the disk is full"
    assert points.MODEL_ERROR not in trial.user_attrs
    loop.work(storage, study, Scores(hook))
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and all(points.MODEL_ARTIFACT in t.user_attrs for t in complete)


def test_export_errors_are_one_line(storage, tmp_path: Path) -> None:
    empty = lifecycle.open_study(storage, definition.parse(GRID_TOML, "empty", "empty.toml"))
    with pytest.raises(SearchError) as raised:
        export.export_best_model(empty, tmp_path / "best.keras", tmp_path)
    one_line(raised, "'empty' has no complete trial")

    without = run(storage, None)  # trials from before models were kept
    with pytest.raises(SearchError) as raised:
        export.export_best_model(without, tmp_path / "best.keras", tmp_path)
    one_line(raised, "has no stored model", "before trials kept their models")


def test_export_says_when_the_file_is_gone_or_cannot_be_written(
        stored, tmp_path: Path) -> None:
    _, study, folder = stored
    (tmp_path / "folder").mkdir()
    for target, reason in [(tmp_path / "missing" / "best.keras", "No such file"),
                           (tmp_path / "folder", "Is a directory")]:
        with pytest.raises(SearchError) as raised:
            export.export_best_model(study, target, folder)
        one_line(raised, f"cannot write {target}", reason, "--export-model")
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]  # no temporary file left
    assert not any((tmp_path / "folder").iterdir())

    moved = tmp_path / "moved.artifacts"  # the study's files are not where they were
    with pytest.raises(SearchError) as raised:
        export.export_best_model(study, tmp_path / "best.keras", moved)
    one_line(raised, "is missing from", str(moved))


def test_the_report_flag_fails_in_one_line(storage, tmp_path: Path, capsys) -> None:
    lifecycle.open_study(storage, definition.parse(GRID_TOML, "grid", "grid.toml"))
    code = report.main(["--study", "grid", "--storage", storage.url, "--export-model",
                        str(tmp_path / "best.keras"), "--out", str(tmp_path / "figures")])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and "no complete trial" in error
    assert not (tmp_path / "best.keras").exists()


@pytest.mark.slow
def test_the_exported_model_scores_the_stored_test_accuracy(
        tmp_path: Path, mnist_dir: Path, tiny_data, capsys) -> None:
    import keras

    from search import running
    from tests.conftest import write_definition

    write_definition(tmp_path / "studies", "tiny", learning_rates=(0.001, 0.01))
    url = f"sqlite:///{tmp_path}/tiny.db"
    result = running.run_study("tiny", storage_url=url, studies_dir=tmp_path / "studies",
                               data_dir=mnist_dir, workers=1, repeats=3, show_progress=False)
    assert result.complete == 6
    assert all(points.MODEL_ARTIFACT in t.user_attrs for t in result.trials)

    target = tmp_path / "best.keras"
    assert report.main(["--study", "tiny", "--storage", url, "--studies-dir",
                        str(tmp_path / "studies"), "--out", str(tmp_path / "figures"),
                        "--export-model", str(target)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("exported trial "))
    exported = result.export_best_model(tmp_path / "again.keras")
    assert line == exported.line().replace(str(exported.path), str(target))
    assert exported.params == result.best.params
    assert exported.replicate == export.typical_replicate(result.best.validation)
    trial = result.study.get_trials()[exported.trial_number]
    assert trial.value == exported.validation_accuracy

    model = keras.models.load_model(target)
    scores = model.evaluate(tiny_data.x_test, tiny_data.y_test, verbose=0, return_dict=True)
    assert len(tiny_data.x_test) == 10_000
    assert scores["accuracy"] == pytest.approx(trial.user_attrs["test_accuracy"], abs=1e-6)
