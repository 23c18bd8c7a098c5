"""Ranges and [search] in a study definition: what they mean, and every malformed one as one
line naming the file and the key, with nothing stored (``search.run`` on a stored study)."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from search import definition
from search.errors import SearchError
from tests.conftest import REPO

SAMPLED = """\
[search_space]
learning_rate = {low = 0.0001, high = 0.1, log = true}
dropout = {low = 0.0, high = 0.5, step = 0.05}
batch_size = [32, 64]

[search]
sampler = "tpe"
trials = 40
sampler_options = {n_startup_trials = 8}

[training]
epochs = 1
hidden_units = [8]
validation_size = 100
train_size = 200
"""
MODEL = """\
[model]
build = "m:b"

[search_space]
units = {low = 16, high = 256, log = true}

[search]
sampler = "random"
trials = 5
"""


def _replace(old: str, new: str, text: str = SAMPLED) -> str:
    assert old in text
    return text.replace(old, new)


def test_a_sampled_definition_reads_ranges_and_its_search() -> None:
    loaded = definition.parse(SAMPLED, "s", "s.toml")
    assert loaded.search_space["learning_rate"] == {"low": 0.0001, "high": 0.1, "log": True,
                                                    "step": None}
    assert loaded.search_space["batch_size"] == [32, 64]
    plan = loaded.search
    assert (plan.sampler, plan.trials, plan.confirm, plan.seed) == ("tpe", 40, 3, 0)
    assert plan.options == {"n_startup_trials": 8}
    assert loaded.repeats == 3  # the default of a sampled study's confirm replicates
    # trials and confirm may grow on a stored study: they never enter what keys its trials
    budget = loaded.budget()
    assert budget["search"] == {"sampler": "tpe", "seed": 0,
                                "sampler_options": {"n_startup_trials": 8}}
    assert "40" not in str(budget) and "confirm" not in str(budget)
    units = definition.parse(MODEL, "m", "m.toml").search_space["units"]
    assert units == {"low": 16, "high": 256, "log": True, "step": None}


def test_a_grid_keeps_its_budget_and_lists() -> None:
    grid = definition.load("mnist")
    assert grid.search.sampler == "grid" and "search" not in grid.budget()
    assert grid.repeats == 3 and len(grid.grid) == 9


# (id, file text, the key the message must name)
MALFORMED = [
    ("low above high", _replace("low = 0.0001, high = 0.1", "low = 0.1, high = 0.0001"),
     "search_space.learning_rate"),
    ("low equals high", _replace("low = 0.0, high = 0.5", "low = 0.5, high = 0.5"),
     "search_space.dropout"),
    ("log with low 0", MODEL.replace("low = 16", "low = 0"), "search_space.units"),
    ("step with log", _replace("log = true}", "log = true, step = 0.01}"),
     "search_space.learning_rate"),
    ("bound not a number", _replace("low = 0.0001", 'low = "small"'),
     "search_space.learning_rate"),
    ("unknown range key", _replace("low = 0.0001", "lo = 0.0001"), "search_space.learning_rate"),
    ("range in a grid", _replace('sampler = "tpe"\ntrials = 40\n'
                                 'sampler_options = {n_startup_trials = 8}\n', ""),
     "search_space.learning_rate"),
    ("unknown sampler", _replace('"tpe"', '"bayes"'), "search.sampler"),
    ("trials missing", _replace("trials = 40\n", ""), "search.trials"),
    ("trials zero", _replace("trials = 40", "trials = 0"), "search.trials"),
    ("confirm negative", _replace("trials = 40", "trials = 40\nconfirm = -1"), "search.confirm"),
    ("confirm above trials", _replace("trials = 40", "trials = 4\nconfirm = 5"),
     "search.confirm"),
    ("unknown sampler option", _replace("n_startup_trials", "n_start"),
     "search.sampler_options.n_start"),
    ("dropout reaching 1", _replace("high = 0.5, step", "high = 1.0, step"),
     "search_space.dropout"),
    ("learning_rate reaching 1", _replace("high = 0.1, log", "high = 1.5, log"),
     "search_space.learning_rate"),
    ("units below 1", MODEL.replace("low = 16, high = 256, log = true", "low = -4, high = 8"),
     "search_space.units"),
    ("batch_size not whole", _replace("batch_size = [32, 64]",
                                      "batch_size = {low = 16.5, high = 64}"),
     "search_space.batch_size"),
    ("hidden_units as a range", _replace("batch_size = [32, 64]",
                                         "hidden_units = {low = 8, high = 64}"),
     "search_space.hidden_units"),
    ("unknown key in search", _replace("trials = 40", "trials = 40\nbudget = 3"),
     "search.budget"),
    ("trials in a grid", definition.load("mnist").source + "[search]\ntrials = 5\n",
     "search.trials"),
]


@pytest.mark.parametrize(("text", "key"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_search_is_one_line_naming_file_and_key(tmp_path: Path, text: str,
                                                           key: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(SearchError) as caught:
        definition.load("broken", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert key in message


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch installed")
def test_gp_without_pytorch_names_what_to_install() -> None:
    with pytest.raises(SearchError, match="gp needs PyTorch: pip install torch"):
        definition.parse(_replace('"tpe"', '"gp"').replace(
            "sampler_options = {n_startup_trials = 8}\n", ""), "s", "s.toml")


@pytest.mark.slow  # seven runs of the command, each its own process
def test_a_bad_search_stores_nothing(tmp_path: Path) -> None:
    """The run refuses each bad input in one line, exit 2, the stored study byte for byte."""
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "s.toml").write_text(SAMPLED)
    database = studies / "s.db"
    command = [sys.executable, "-m", "search.run", "--study", "s", "--studies-dir",
               str(studies), "--storage", f"sqlite:///{database}"]
    # A stored study to keep: made by the library, not a run (nothing trains here).
    from search.study import lifecycle
    from search.study.storage import open_storage
    lifecycle.open_study(open_storage(f"sqlite:///{database}"),
                         definition.load("s", studies))
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    for _, text, key in MALFORMED[:4] + MALFORMED[7:9] + MALFORMED[12:13]:
        (studies / "s.toml").write_text(text)
        ran = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert ran.returncode != 0 and "Traceback" not in ran.stderr
        assert ran.stderr.strip().count("\n") == 0 and key in ran.stderr, ran.stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
