"""``python -m search.run``: bad inputs end in one line, and a real tiny study runs whole.

The bad inputs run the real command in a subprocess (what a person sees); the full runs call
``search.run.main`` in this process, on 600 training images and a 16-8 MLP.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import run
from tests.conftest import write_definition

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
FULL_GRID = {"learning_rates": (0.0001, 0.001, 0.01), "batch_sizes": (32, 64, 128)}
EPOCHS = 2  # of the two-point study; the 3 x 3 grid trains 1 epoch per point


def cli(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.run", *arguments], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def load_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # no such study
        return []
    finally:
        storage.engine.dispose()


def study_names(url: str) -> set[str]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return set(optuna.get_all_study_names(storage))
    finally:
        storage.engine.dispose()


def snapshot(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state, t.params, t.value, t.user_attrs) for t in trials]


# --- bad inputs, through a subprocess --------------------------------------------------------


@pytest.fixture
def studies(tmp_path: Path) -> Path:
    folder = tmp_path / "studies"
    write_definition(folder, "tiny")
    return folder


def test_unknown_study(studies: Path, tmp_path: Path) -> None:
    result = cli("--study", "nope", "--studies-dir", str(studies),
                 "--storage", f"sqlite:///{tmp_path}/x.db")
    assert_one_line_error(result, "nope", "tiny")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("text", ['[training]\nepochs = "ten"\n', "[search_space\n",
                                  "\xff binary"], ids=["wrong type", "invalid TOML", "binary"])
def test_malformed_definition(studies: Path, tmp_path: Path, text: str) -> None:
    (studies / "broken.toml").write_bytes(text.encode("latin-1"))
    result = cli("--study", "broken", "--studies-dir", str(studies),
                 "--storage", f"sqlite:///{tmp_path}/x.db")
    assert_one_line_error(result, str(studies / "broken.toml"))
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_unreadable_data_dir(studies: Path, tmp_path: Path, where: str) -> None:
    data_dir = tmp_path / "mnist"
    if where == "empty":
        data_dir.mkdir()
    result = cli("--study", "tiny", "--studies-dir", str(studies),
                 "--storage", f"sqlite:///{tmp_path}/x.db", "--data-dir", str(data_dir))
    assert_one_line_error(result, str(data_dir))
    # Not even an empty study is left behind to be found by the dashboard.
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/x.db") == []


def test_a_stored_study_resumed_by_two_workers_reports_a_bad_data_dir_once(
        studies: Path, tmp_path: Path) -> None:
    from search import definition
    from search.study import lifecycle
    from search.study.storage import open_storage

    url = f"sqlite:///{tmp_path}/x.db"
    lifecycle.open_study(open_storage(url), definition.load("tiny", studies))  # no trial yet
    result = cli("--study", "tiny", "--studies-dir", str(studies), "--storage", url,
                 "--workers", "2", "--data-dir", str(tmp_path / "missing"))
    assert_one_line_error(result, str(tmp_path / "missing"))


@pytest.mark.parametrize(("url", "fragment"), [
    ("notaurl", "not a database URL"),
    ("sqlite:////nonexistent/dir/x.db", "does not exist"),
    ("sqlite://", "in-memory"),
])
def test_bad_storage_url(studies: Path, url: str, fragment: str) -> None:
    result = cli("--study", "tiny", "--studies-dir", str(studies), "--storage", url)
    assert_one_line_error(result, fragment)


def test_unreachable_postgres_server(studies: Path) -> None:
    url = "postgresql+psycopg://someone:secret@127.0.0.1:1/nothing"
    result = cli("--study", "tiny", "--studies-dir", str(studies), "--storage", url)
    line = assert_one_line_error(result, "127.0.0.1")
    assert "secret" not in line


@pytest.mark.parametrize("content", [b"garbage bytes, not a database\n" * 40,
                                     b"SQLite format 3\x00" + bytes(range(256)) * 8],
                         ids=["garbage", "header then garbage"])
def test_storage_file_that_is_not_a_database_is_left_alone(
        studies: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    result = cli("--study", "tiny", "--studies-dir", str(studies), "--storage",
                 f"sqlite:///{path}")
    assert_one_line_error(result, str(path))
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["studies", "x.db"]


@pytest.mark.parametrize("arguments", [
    ["--study", "tiny", "--no-such-flag"],
    ["--studies-dir", "."],  # no --study
    ["--study", "tiny", "--epochs", "ten"],
    ["--study", "tiny", "--epochs", "0"],
    ["--study", "tiny", "--workers", "0"],
    ["--study", "tiny", "--repeats", "0"],
], ids=["unknown flag", "missing study", "epochs not a number", "epochs 0", "workers 0",
        "repeats 0"])
def test_bad_flags(studies: Path, tmp_path: Path, arguments: list[str]) -> None:
    result = cli(*arguments, "--studies-dir", str(studies),
                 "--storage", f"sqlite:///{tmp_path}/x.db")
    assert_one_line_error(result)
    assert not (tmp_path / "x.db").exists()


def test_help_explains_every_option() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for option in ("--study", "--storage", "--data-dir", "--epochs", "--quick", "--repeats",
                   "--workers", "--threads", "--fresh", "--retry-failed", "--studies-dir"):
        assert option in result.stdout


def assert_history(trial: optuna.trial.FrozenTrial, epochs: int) -> None:
    """One entry per epoch of each metric, accuracies in [0, 1], one report per epoch."""
    history = trial.user_attrs["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == epochs for values in history.values())
    for name in ("accuracy", "val_accuracy"):
        assert all(0.0 <= value <= 1.0 for value in history[name])
    assert all(value >= 0.0 for value in history["loss"] + history["val_loss"])
    assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
    assert trial.value == history["val_accuracy"][-1]
    assert 1 <= trial.user_attrs["best_epoch"] <= epochs


# --- full runs, in this process --------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> tuple[Path, str]:
    """The whole 3 x 3 grid, run once: (studies folder, storage URL)."""
    root = tmp_path_factory.mktemp("finished")
    write_definition(root / "studies", "grid", epochs=1, **FULL_GRID)
    url = f"sqlite:///{root}/grid.db"
    code = run.main(["--study", "grid", "--studies-dir", str(root / "studies"),
                     "--storage", url, "--data-dir", str(mnist_dir), "--workers", "1"])
    assert code == 0
    return root / "studies", url


def test_full_run_completes_every_grid_point_once(finished: tuple[Path, str]) -> None:
    _, url = finished
    trials = load_trials(url, "grid")
    assert len(trials) == 9 and all(t.state == TrialState.COMPLETE for t in trials)
    pairs = {(t.params["learning_rate"], t.params["batch_size"]) for t in trials}
    assert pairs == {(rate, size) for rate in FULL_GRID["learning_rates"]
                     for size in FULL_GRID["batch_sizes"]}
    for trial in trials:
        history = trial.user_attrs["history"]
        assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert_history(trial, epochs=1)
        assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0
        assert trial.user_attrs["seed"] == 0
        assert trial.user_attrs["replicate"] == 0  # one replicate per point: the study's seed


def test_rerun_of_finished_study_adds_nothing(finished: tuple[Path, str], mnist_dir: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    studies_dir, url = finished
    before = snapshot(load_trials(url, "grid"))
    capsys.readouterr()
    code = run.main(["--study", "grid", "--studies-dir", str(studies_dir), "--storage", url,
                     "--data-dir", str(mnist_dir), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "finished" in err and "9 of 9" in err
    assert "9 of 9 grid points complete" in out and "best:" in out
    assert snapshot(load_trials(url, "grid")) == before


def test_changed_definition_is_refused(finished: tuple[Path, str], tmp_path: Path,
                                       mnist_dir: Path, capsys: pytest.CaptureFixture) -> None:
    studies_dir, url = finished
    changed = tmp_path / "studies"
    write_definition(changed, "grid", epochs=2, **FULL_GRID)
    before = snapshot(load_trials(url, "grid"))
    capsys.readouterr()
    code = run.main(["--study", "grid", "--studies-dir", str(changed), "--storage", url,
                     "--data-dir", str(mnist_dir), "--workers", "1"])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.splitlines()) == 1 and "epochs" in err and "grid" in err
    assert snapshot(load_trials(url, "grid")) == before


def test_read_only_storage_of_a_finished_study_is_left_alone(
        finished: tuple[Path, str], tmp_path: Path) -> None:
    studies_dir, url = finished
    path = tmp_path / "read-only.db"
    shutil.copyfile(url.removeprefix("sqlite:///"), path)
    content = path.read_bytes()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    before = snapshot(load_trials(url, "grid"))
    result = cli("--study", "grid", "--studies-dir", str(studies_dir),
                 "--storage", f"sqlite:///{path}")
    assert_one_line_error(result, str(path), "read-only")
    assert path.read_bytes() == content
    assert snapshot(load_trials(f"sqlite:///{path}", "grid")) == before


def test_quick_run_is_a_separate_study(tmp_path: Path, mnist_dir: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    studies_dir = tmp_path / "studies"
    write_definition(studies_dir, "pair", learning_rates=(0.001, 0.01), epochs=EPOCHS)
    url = f"sqlite:///{tmp_path}/x.db"
    arguments = ["--study", "pair", "--studies-dir", str(studies_dir), "--storage", url,
                 "--data-dir", str(mnist_dir), "--workers", "1"]
    assert run.main(arguments) == 0
    before = snapshot(load_trials(url, "pair"))
    assert len(before) == 2
    for trial in load_trials(url, "pair"):
        assert trial.state == TrialState.COMPLETE
        assert_history(trial, epochs=EPOCHS)
    assert run.main([*arguments, "--quick"]) == 0
    assert study_names(url) == {"pair", "pair-quick"}
    quick = load_trials(url, "pair-quick")
    assert len(quick) == 2 and all(t.state == TrialState.COMPLETE for t in quick)
    assert all(len(t.user_attrs["history"]["val_accuracy"]) == 1 for t in quick)
    assert snapshot(load_trials(url, "pair")) == before
