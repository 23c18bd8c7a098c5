"""Flags to options, without running anything: names, defaults, bad values, the workers'
settings (which travel as JSON, never on a command line)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search import definition, options, run
from search.errors import SearchError
from search.locations import STORAGE_VARIABLE, locate
from search.worker import pool

DEFINITION = definition.parse("""\
[search_space]
learning_rate = [0.001, 0.01]
batch_size = [32]

[training]
epochs = 3
hidden_units = [8]
validation_size = 10
seed = 0
repeats = 2
""", "tiny", "tiny.toml")
SECRET_URL = "postgresql+psycopg://search:s3cret@db.example/search"


def test_quick_and_epochs_make_studies_of_their_own_names() -> None:
    quick = options.effective_definition(DEFINITION, quick=True)
    assert (quick.name, quick.epochs, quick.train_size) == ("tiny-quick", 1, 2000)
    longer = options.effective_definition(DEFINITION, epochs=5)
    assert (longer.name, longer.epochs) == ("tiny-epochs5", 5)
    assert options.effective_definition(DEFINITION, epochs=3).name == "tiny"


def test_repeats_grow_the_same_study() -> None:
    grown = options.effective_definition(DEFINITION, repeats=5)
    assert (grown.name, grown.repeats) == ("tiny", 5)
    assert grown.budget() == DEFINITION.budget()  # replicates are not part of the budget


@pytest.mark.parametrize("setting", [{"workers": 0}, {"threads": -1}, {"repeats": 0},
                                     {"epochs": 0}])
def test_non_positive_numbers_are_one_line_errors(setting: dict) -> None:
    with pytest.raises(SearchError, match="must be positive") as raised:
        options.make_options(DEFINITION, **setting)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("setting", [{"threads": "2"}, {"epochs": 2.5}, {"repeats": True}])
def test_settings_that_are_not_whole_numbers_are_one_line_errors(setting: dict) -> None:
    with pytest.raises(SearchError, match="must be a positive whole number"):
        options.make_options(DEFINITION, **setting)


def test_quick_and_epochs_exclude_each_other() -> None:
    with pytest.raises(SearchError, match="--quick trains 1 epoch"):
        options.make_options(DEFINITION, quick=True, epochs=3)


def test_storage_comes_from_the_flag_then_the_environment_then_the_definition(
        monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STORAGE_VARIABLE, raising=False)
    assert locate(DEFINITION, None, tmp_path).storage_url == f"sqlite:///{tmp_path}/tiny.db"
    monkeypatch.setenv(STORAGE_VARIABLE, SECRET_URL)
    assert locate(DEFINITION, None, tmp_path).storage_url == SECRET_URL
    assert locate(DEFINITION, "sqlite:///x.db", tmp_path).storage_url == "sqlite:///x.db"


def test_options_round_trip_through_json() -> None:
    made = options.make_options(DEFINITION, storage_url=SECRET_URL, workers=2, repeats=3,
                                data_dir="/data", fresh=True)
    assert options.RunOptions.from_json(made.to_json()) == made


def test_workers_get_the_storage_url_on_stdin_not_on_their_command_line() -> None:
    made = options.make_options(DEFINITION, storage_url=SECRET_URL, workers=2)
    command = pool.worker_command()
    assert not any("s3cret" in part or "postgresql" in part for part in command)
    assert "s3cret" in pool.worker_input(made)


def test_every_run_flag_reaches_the_options(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(DEFINITION.source)
    made = run.options_from(run.build_parser().parse_args([
        "--study", "tiny", "--storage", "sqlite:///x.db", "--data-dir", "d", "--epochs", "2",
        "--repeats", "3", "--workers", "2", "--threads", "4", "--fresh", "--retry-failed",
        "--studies-dir", str(tmp_path)]))
    assert (made.definition.name, made.definition.epochs, made.definition.repeats) == \
        ("tiny-epochs2", 2, 3)
    assert (made.storage_url, made.locations.studies_dir, made.data_dir) == \
        ("sqlite:///x.db", tmp_path, "d")
    assert (made.workers, made.threads, made.fresh, made.retry_failed) == (2, 4, True, True)


@pytest.mark.parametrize("argv", [[], ["--study"], ["--study", "x", "--workers", "two"],
                                  ["--study", "x", "--bogus"]])
def test_a_wrong_flag_is_one_line_and_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        run.build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "see --help" in err


def test_run_main_reports_a_bad_value_in_one_line(capsys, tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(DEFINITION.source)
    code = run.main(["--study", "tiny", "--studies-dir", str(tmp_path), "--workers", "0"])
    assert code == 1
    assert capsys.readouterr().err.strip() == "error: --workers must be positive, not 0"
    assert not (tmp_path / "tiny.db").exists()


def test_auto_workers_leave_a_busy_core_to_the_program_that_keeps_it_busy() -> None:
    cores = len(os.sched_getaffinity(0))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        assert 1 <= options.auto_workers() <= max(1, cores - 1)
    finally:
        busy.kill()
        busy.wait()
