"""Study definitions: the real files load, and every malformed one ends in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import definition
from search.errors import SearchError

VALID = """\
[search_space]
learning_rate = [0.0001, 0.001, 0.01]
batch_size = [32, 64, 128]

[training]
epochs = 2
hidden_units = [16, 8]
validation_size = 200
seed = 0
"""


@pytest.mark.parametrize("name", ["mnist", "mnist-smoke"])
def test_project_definitions_load_with_the_full_grid(name: str) -> None:
    loaded = definition.load(name)
    assert loaded.name == name
    assert loaded.search_space == {"learning_rate": [0.0001, 0.001, 0.01],
                                   "batch_size": [32, 64, 128]}
    pairs = {(point["learning_rate"], point["batch_size"]) for point in loaded.grid}
    assert len(loaded.grid) == len(pairs) == 9
    assert loaded.epochs >= 1 and loaded.hidden_units and loaded.validation_size > 0


def test_mnist_is_the_full_budget_and_smoke_its_tiny_twin() -> None:
    full, smoke = definition.load("mnist"), definition.load("mnist-smoke")
    assert full.epochs == 10 and full.train_size is None and full.repeats == 3
    assert smoke.epochs == 1 and smoke.train_size is not None
    assert smoke.search_space == full.search_space


def test_a_valid_file_round_trips(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(VALID)
    loaded = definition.load("mine", tmp_path)
    assert (loaded.epochs, loaded.hidden_units, loaded.seed) == (2, [16, 8], 0)
    assert loaded.max_attempts == 3 and loaded.train_size is None and loaded.repeats == 1
    assert loaded.storage_url is None  # no [storage] url: search.locations picks the file
    assert loaded.source == VALID


USER = "[search_space]\nlearning_rate = [0.001]\n"  # a grid that any [model] could take


def _replace(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


# (id, file text, the key the message must name)
MALFORMED = [
    ("unknown section", VALID + "[trainig]\nepochs = 1\n", "trainig"),
    ("unknown key", _replace("seed = 0", "seed = 0\nepoch = 3"), "training.epoch"),
    ("unknown storage key", VALID + "[storage]\nuri = 'sqlite:///x.db'\n", "storage.uri"),
    ("epochs a string", _replace("epochs = 2", 'epochs = "ten"'), "training.epochs"),
    ("epochs a bool", _replace("epochs = 2", "epochs = true"), "training.epochs"),
    ("epochs a float", _replace("epochs = 2", "epochs = 2.5"), "training.epochs"),
    ("epochs zero", _replace("epochs = 2", "epochs = 0"), "training.epochs"),
    ("repeats zero", _replace("seed = 0", "seed = 0\nrepeats = 0"), "training.repeats"),
    ("repeats text", _replace("seed = 0", "seed = 0\nrepeats = \"3\""), "training.repeats"),
    ("hidden_units a string", _replace("[16, 8]", '"16,8"'), "training.hidden_units"),
    ("hidden_units empty", _replace("[16, 8]", "[]"), "training.hidden_units"),
    ("hidden_units negative", _replace("[16, 8]", "[16, -8]"), "training.hidden_units"),
    ("seed negative", _replace("seed = 0", "seed = -1"), "training.seed"),
    ("seed too large", _replace("seed = 0", "seed = 4294967296"), "training.seed"),
    ("seed a float", _replace("seed = 0", "seed = 0.5"), "training.seed"),
    ("storage url a number", VALID + "[storage]\nurl = 5\n", "storage.url"),
    ("empty list", _replace("batch_size = [32, 64, 128]", "batch_size = []"),
     "search_space.batch_size"),
    ("repeated value", _replace("[32, 64, 128]", "[32, 64, 32]"), "search_space.batch_size"),
    ("batch size a float", _replace("[32, 64, 128]", "[32, 64.5]"), "search_space.batch_size"),
    ("nested list", _replace("[32, 64, 128]", "[[32], [64]]"), "search_space.batch_size"),
    ("learning_rate searched and fixed", _replace("seed = 0", "seed = 0\nlearning_rate = 0.1"),
     "training.learning_rate"),
    ("batch_size searched and fixed", _replace("seed = 0", "seed = 0\nbatch_size = 16"),
     "training.batch_size"),
    ("fixed learning_rate of 2", _replace("learning_rate = [0.0001, 0.001, 0.01]\n", "")
     .replace("seed = 0", "seed = 0\nlearning_rate = 2.0"), "training.learning_rate"),
    ("model without build", USER + "[model]\nfilters = 3\n", "model.build"),
    ("build not module:function", USER + '[model]\nbuild = "convnet.build"\n', "model.build"),
    ("model searched and fixed", USER + '[model]\nbuild = "m:b"\nlearning_rate = 0.1\n',
     "model.learning_rate"),
    ("MLP knob beside a model", USER + '[model]\nbuild = "m:b"\n[training]\ndropout = 0.1\n',
     "training.dropout"),
    ("a list searched for a model", USER.replace("[0.001]", "[[1, 2]]")
     + '[model]\nbuild = "m:b"\n', "search_space.learning_rate"),
    ("data without a model", VALID + '[data]\npath = "x.npz"\n', "[data]"),
    ("data with both", USER + '[model]\nbuild = "m:b"\n[data]\npath = "x.npz"\nload = "m:l"\n',
     "[data]"),
    ("metric not a validation one", USER + '[objective]\nmetric = "loss"\n', "objective.metric"),
    ("metric with no direction", USER + '[objective]\nmetric = "val_iou"\n',
     "objective.direction"),
    ("direction misspelt", USER + '[objective]\ndirection = "up"\n', "objective.direction"),
    ("learning_rate of 1", _replace("0.01]", "1.0]"), "search_space.learning_rate"),
    ("learning_rate of 0", _replace("0.0001,", "0.0,"), "search_space.learning_rate"),
    ("learning_rate negative", _replace("0.0001,", "-0.1,"), "search_space.learning_rate"),
    ("learning_rate nan", _replace("0.0001,", "nan,"), "search_space.learning_rate"),
    ("learning_rate a string", _replace("0.0001,", '"fast",'), "search_space.learning_rate"),
    ("no search space", "[training]" + VALID.split("[training]")[1], "search_space"),
    ("newline in a key", VALID + '"ep\\nochs" = 1\n', "training.ep"),
    ("path misspelt", USER + '[model]\nbuild = "m:b"\n[training]\npath = "jit"\n',
     "training.path"),
    ("path for the MLP", _replace("seed = 0", 'seed = 0\npath = "fit"'), "training.path"),
]


@pytest.mark.parametrize(("text", "key"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_definition_is_one_line_naming_file_and_key(
        tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(SearchError) as caught:
        definition.load("broken", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    assert str(path) in message
    assert key in message


@pytest.mark.parametrize("text", ["[search_space\n", "epochs = = 1\n",
                                  "[training]\nepochs = 1\nepochs = 2\n"],
                         ids=["unclosed table", "double equals", "duplicate key"])
def test_invalid_toml_is_one_line_naming_the_file_and_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(SearchError, match=r"not valid TOML") as caught:
        definition.load("broken", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "line" in message


def test_a_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01 not utf-8")
    with pytest.raises(SearchError) as caught:
        definition.load("binary", tmp_path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_unknown_study_names_the_file_and_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(VALID)
    with pytest.raises(SearchError) as caught:
        definition.load("mnsit", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "mnsit.toml") in message and "mine" in message


def test_a_builder_study_reads_its_sections_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        '[model]\nbuild = "convnet:build"\nfilters = 8\n[data]\npath = "d.npz"\n'
        "[search_space]\ndropout = [0.0, 0.5]\n[objective]\nmetric = \"val_loss\"\n")
    loaded = definition.load("mine", tmp_path)
    assert (loaded.metric, loaded.direction) == ("val_loss", "minimize")
    assert loaded.model == {"build": "convnet:build", "filters": 8}
    assert loaded.folder == tmp_path and loaded.batch_size == 32 and loaded.path == "auto"
    assert loaded.model_arguments({"dropout": 0.5}) == {"filters": 8, "dropout": 0.5}
    assert loaded.budget()["objective"] == ["val_loss", "minimize"]


def test_the_mlp_with_a_fixed_learning_rate_and_batch_size(tmp_path: Path) -> None:
    (tmp_path / "fixed.toml").write_text(
        "[search_space]\ndropout = [0.0, 0.3]\n[training]\nlearning_rate = 0.01\n"
        "batch_size = 64\n")
    loaded = definition.load("fixed", tmp_path)
    assert loaded.model_arguments({"dropout": 0.3})["learning_rate"] == 0.01
    assert loaded.batch_size_at({"dropout": 0.3}) == 64
    assert {"learning_rate": 0.01, "batch_size": 64}.items() <= loaded.budget().items()
