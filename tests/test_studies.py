"""Where studies live: definitions in ./studies (or --studies-dir) first, then the ones shipped
inside the package; databases, checkpoints and artifacts in the studies folder, whichever
place the definition came from. No training: definitions, options and paths only."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from search import definition, options, running
from search.errors import SearchError
from search.locations import ARTIFACTS_VARIABLE, STORAGE_VARIABLE, locate_stored

REPO = Path(__file__).resolve().parent.parent
MINE = """\
[search_space]
learning_rate = [0.5]
batch_size = [16]

[training]
epochs = 7
hidden_units = [4]
validation_size = 10
seed = 0
"""

SHIPPED = ["mnist", "mnist-convnet", "mnist-smoke", "mnist-width-dropout", "regression",
           "regression-tpe"]


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch) -> Path:
    """The current folder is an empty one, as for a user of the installed package."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORAGE_VARIABLE, raising=False)
    monkeypatch.delenv(ARTIFACTS_VARIABLE, raising=False)
    return tmp_path


def test_shipped_definitions_are_found_from_an_empty_folder(empty_folder: Path) -> None:
    shipped = definition.load("mnist")
    assert shipped.source == (REPO / "studies" / "mnist.toml").read_text()
    assert definition.known() == ([], SHIPPED)
    quick = definition.find("mnist-quick")  # what the report and dashboard look up
    assert (quick.name, quick.budget()) == ("mnist-quick", shipped.budget())
    assert not (empty_folder / "studies").exists()  # looking creates nothing


def test_the_studies_folder_comes_before_the_shipped_definitions(empty_folder: Path) -> None:
    (empty_folder / "studies").mkdir()
    (empty_folder / "studies" / "mnist.toml").write_text(MINE)
    (empty_folder / "studies" / "mine.toml").write_text(MINE)
    assert definition.load("mnist").epochs == 7
    assert definition.find("mnist-quick").epochs == 7
    assert definition.load("mnist-smoke").source == \
        (REPO / "studies" / "mnist-smoke.toml").read_text()
    assert definition.known() == (["mine", "mnist"], SHIPPED)
    elsewhere = empty_folder / "elsewhere"  # --studies-dir: the same order
    elsewhere.mkdir()
    (elsewhere / "mnist-smoke.toml").write_text(MINE)
    assert definition.load("mnist-smoke", elsewhere).epochs == 7
    assert definition.load("mnist", elsewhere).epochs == 10


def test_an_unknown_study_lists_both_places_in_one_line(empty_folder: Path) -> None:
    (empty_folder / "studies").mkdir()
    (empty_folder / "studies" / "mine.toml").write_text(MINE)
    for name in ("mnsit", "mnsit-quick"):
        with pytest.raises(SearchError) as raised:
            definition.find(name)
        message = str(raised.value)
        assert "\n" not in message
        assert "known in studies: mine; shipped: mnist, mnist-convnet, mnist-smoke" in message


def test_storage_checkpoints_and_artifacts_default_to_the_studies_folder(
        empty_folder: Path) -> None:
    shipped = definition.load("mnist")
    made = options.make_options(shipped, quick=True).locations
    assert made.storage_url == "sqlite:///studies/mnist-quick.db"
    # One store holds the checkpoints (under checkpoints/NAME/) and the trials' files.
    assert made.artifacts == "studies/mnist-quick.artifacts"
    assert made.reports == Path("reports/mnist-quick")
    mine = empty_folder / "mine"
    assert options.make_options(shipped, studies_dir=mine).storage_url == \
        f"sqlite:///{mine}/mnist.db"
    # The reading tools find the same places from the study's name alone.
    assert locate_stored("mnist-quick") == made


def test_a_run_makes_the_default_studies_folder_but_not_a_storage_folder(
        empty_folder: Path) -> None:
    no_data = str(empty_folder / "no-data")  # the run stops at the data, after its storage
    elsewhere = f"sqlite:///{empty_folder}/missing/x.db"
    with pytest.raises(SearchError, match="missing"):
        running.run_study("mnist-smoke", storage_url=elsewhere, data_dir=no_data,
                          workers=1)
    assert not (empty_folder / "missing").exists() and not (empty_folder / "studies").exists()
    with pytest.raises(SearchError, match="no-data"):
        running.run_study("mnist-smoke", data_dir=no_data, workers=1)
    assert (empty_folder / "studies").is_dir()


def test_the_package_list_names_every_package_and_ships_the_definitions() -> None:
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(path.parent.relative_to(REPO).parts)
             for path in (REPO / "search").rglob("__init__.py")}
    assert set(settings["packages"]) == found | {"search.studies"}
    assert settings["package-dir"] == {"search.studies": "studies"}
    assert settings["package-data"]["search.studies"] == ["*.toml"]
    assert (REPO / "studies" / "__init__.py").is_file()


def test_the_artifact_store_is_the_flag_then_the_variable_then_the_study_file(
        empty_folder: Path, monkeypatch) -> None:
    folder = empty_folder / "studies"
    folder.mkdir()
    (folder / "mine.toml").write_text(MINE + '\n[storage]\nartifacts = "s3://file-bucket/x"\n')
    mine = definition.load("mine", folder)
    assert mine.artifacts == "s3://file-bucket/x"

    def located(**flags: str) -> str:
        return options.make_options(mine, studies_dir=folder, **flags).locations.artifacts

    assert located() == "s3://file-bucket/x"
    monkeypatch.setenv(ARTIFACTS_VARIABLE, "s3://env-bucket/x")
    assert located() == "s3://env-bucket/x"
    assert located(artifacts="/mnt/flag") == "/mnt/flag"
    monkeypatch.delenv(ARTIFACTS_VARIABLE)
    # A reading tool given only --storage still finds the store the study file names.
    url = "postgresql+psycopg://host/db"
    assert locate_stored("mine", url, folder).artifacts == "s3://file-bucket/x"
    assert locate_stored("mine", url, folder, "/mnt/flag").artifacts == "/mnt/flag"
    assert locate_stored("gone", url, folder).artifacts == str(folder / "gone.artifacts")


def test_a_bad_artifact_store_in_a_study_file_is_one_line() -> None:
    with pytest.raises(SearchError) as raised:
        definition.parse(MINE + "\n[storage]\nartifacts = 3\n", "mine", "mine.toml")
    assert str(raised.value) == "mine.toml: 'storage.artifacts' must be str, not 3"
