"""``python scripts/report.py`` (``python -m search.report``): reads storage only, prints the
best grid point, writes figures.

One tiny study (2 grid points, 2 epochs, 600 images) is run for real once per module; a
second is left partly done on purpose.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search import definition as definitions
from search import run
from search.locations import locate
from search.study import lifecycle
from search.study.storage import open_storage
from search.training.compiled import CompiledTraining
from search.worker import loop
from search.worker.objective import Objective
from search.worker.paths import CompiledPath
from tests.conftest import write_definition

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = {"best_point_curves.png", "validation_curves.png", "heatmap.png"}


def _load_script():
    spec = importlib.util.spec_from_file_location("report_script", REPO / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report_script = _load_script()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """studies dir holding tiny.toml and its finished study in tiny.db."""
    folder = tmp_path_factory.mktemp("finished")
    write_definition(folder, "tiny", epochs=2)
    assert run.main(["--study", "tiny", "--studies-dir", str(folder),
                     "--data-dir", str(mnist_dir)]) == 0
    return folder


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory, tiny_data) -> Path:
    """studies dir holding part.toml: 1 of its 3 grid points run, 2 never started."""
    folder = tmp_path_factory.mktemp("partial")
    write_definition(folder, "part", learning_rates=(0.001, 0.01, 0.1))
    definition = definitions.load("part", folder)
    storage = open_storage(locate(definition, studies_dir=folder).storage_url)
    study = lifecycle.open_study(storage, definition)

    def stop(trial: optuna.trial.FrozenTrial) -> None:
        raise KeyboardInterrupt  # as Ctrl-C after the first trial

    with CompiledTraining() as compiled, pytest.raises(KeyboardInterrupt):
        loop.work(storage, study, Objective(definition, CompiledPath(compiled, tiny_data)),
                  on_trial_end=stop)
    storage.rdb.engine.dispose()
    return folder


def _load(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / name}.db")


def test_report_prints_the_best_pair_and_writes_figures_and_exports(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, table_csv, table_json = tmp_path / "figures", tmp_path / "t.csv", tmp_path / "t.json"
    code = report_script.main(["--study", "tiny", "--studies-dir", str(finished),
                               "--out", str(out), "--csv", str(table_csv),
                               "--json", str(table_json)])
    printed = capsys.readouterr().out
    assert code == 0
    best = _load(finished, "tiny").best_trial  # one replicate: the best trial is the best point
    pair = " ".join(f"{name}={value:g}" for name, value in best.params.items())
    assert (f"best: {pair} seed-adjusted mean validation accuracy {best.value:.4f} (n=1)"
            in printed)
    assert "2 of 2 grid points complete" in printed

    assert {path.name for path in out.iterdir()} == FIGURES
    for path in out.iterdir():
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 10_000

    records = list(csv.DictReader(io.StringIO(table_csv.read_text())))
    exported = json.loads(table_json.read_text())
    pairs = exported["points"]
    assert exported["pairs"] == pairs  # the old name, kept for one release
    assert len(records) == len(pairs) == 2
    assert pairs[0]["params"] == best.params and pairs[0]["mean"] == best.value
    assert pairs[0]["validation"] == {"0": best.value}
    assert exported["verdict"]["best"]["params"] == best.params
    # One replicate: no noise estimate, so nothing is ruled out.
    assert exported["verdict"]["ruled_out"] == [] and len(exported["verdict"]["contenders"]) == 2
    assert float(records[0]["mean"]) == round(best.value, 4)
    assert records[0]["verdict"] == "best" and records[0]["n"] == "1/1"
    assert {pair["state"] for pair in pairs} == {"complete"}
    # The per-trial CSV beside it: one row per unit, with each trial's full-precision value.
    trial_rows = list(csv.DictReader(io.StringIO(
        (tmp_path / "t.trials.csv").read_text())))
    assert len(trial_rows) == 2 and {row["state"] for row in trial_rows} == {"complete"}
    assert [float(row["val_accuracy"]) for row in trial_rows
            if int(row["trial"]) == best.number] == [best.value]


def test_report_never_writes_to_the_storage(finished: Path, tmp_path: Path) -> None:
    database = finished / "tiny.db"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    assert report_script.main(["--study", "tiny", "--studies-dir", str(finished),
                               "--out", str(tmp_path)]) == 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_report_covers_a_partly_finished_study(partial: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    table_json = tmp_path / "t.json"
    code = report_script.main(["--study", "part", "--studies-dir", str(partial),
                               "--out", str(tmp_path / "figures"), "--json", str(table_json)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "1 of 3 grid points complete" in printed and "best: learning_rate=" in printed
    states = [pair["state"] for pair in json.loads(table_json.read_text())["points"]]
    assert states == ["complete", "pending", "pending"]
    assert {path.name for path in (tmp_path / "figures").iterdir()} == FIGURES


@pytest.mark.parametrize("extra, fragment", [
    ((), "does not exist; run python -m search.run --study tiny first"),
    (("--storage", "sqlite:///{folder}/elsewhere.db"), "elsewhere.db does not exist"),
    (("--storage", "not a url"), "is not a database URL"),
])
def test_report_on_a_missing_study_is_one_line_and_creates_nothing(
        tmp_path: Path, extra: tuple[str, ...], fragment: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_definition(tmp_path, "tiny")
    before = sorted(tmp_path.iterdir())
    code = report_script.main(["--study", "tiny", "--studies-dir", str(tmp_path), "--out",
                               str(tmp_path / "out"),
                               *(arg.format(folder=tmp_path) for arg in extra)])
    errors = capsys.readouterr().err
    assert code == 1 and errors.count("\n") == 1 and fragment in errors, errors
    assert sorted(tmp_path.iterdir()) == before  # no empty database, no figures


def test_the_command_names_the_studies_a_storage_holds(finished: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/report.py", "--study", "other", "--storage",
         f"sqlite:///{finished}/tiny.db"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "has no study 'other' (it holds: tiny)" in result.stderr
