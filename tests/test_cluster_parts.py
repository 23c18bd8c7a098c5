"""``--cluster ray`` without a cluster: the flags, what reaches the nodes, what is refused.

The runs themselves (a local Ray cluster of several nodes) are in tests/test_cluster.py.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from search import definition, options, run
from search.cluster import actor, joining, package
from search.errors import SearchError

DEFINITION = definition.parse('[search_space]\nlearning_rate = [0.1]\n', "tiny", "test")
SECRET_URL = "postgresql+psycopg://team:s3cret@db.example:5432/studies"


def _options(folder: Path, *flags: str) -> options.RunOptions:
    (folder / "tiny.toml").write_text(DEFINITION.source)
    return run.options_from(run.build_parser().parse_args(
        ["--study", "tiny", "--studies-dir", str(folder), *flags]))


def test_the_cluster_flags_reach_the_options(tmp_path: Path, monkeypatch) -> None:
    made = _options(tmp_path, "--cluster", "ray", "--gpus-per-worker", "0.5", "--threads", "2")
    assert (made.cluster, made.gpus_per_worker, made.threads) == ("ray", 0.5, 2)
    assert made.workers == options.CLUSTER_AUTO  # decided once the cluster is joined
    assert options.RunOptions.from_json(made.to_json()) == made
    assert _options(tmp_path).cluster is None  # without the flag nothing changes
    monkeypatch.setenv("SEARCH_CLUSTER", "ray")
    assert _options(tmp_path, "--workers", "3").cluster == "ray"
    assert _options(tmp_path, "--workers", "3").workers == 3
    assert _options(tmp_path, "--cluster", "none").cluster is None  # the flag wins


@pytest.mark.parametrize(("flags", "expected"), [
    (["--cluster", "k8s"], "--cluster takes ray"),
    (["--gpus-per-worker", "1"], "--gpus-per-worker places workers on a cluster's GPUs"),
    (["--cluster", "ray", "--gpus-per-worker", "-1"], "must be a positive number, not -1"),
])
def test_a_bad_cluster_setting_is_one_line(flags, expected, tmp_path: Path, capsys) -> None:
    (tmp_path / "tiny.toml").write_text(DEFINITION.source)
    code = run.main(["--study", "tiny", "--studies-dir", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "tiny.db").exists()


def test_ray_missing_is_one_line_with_the_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SearchError, match=r'pip install "keras-optuna-search\[ray\]"'):
        joining.import_ray()


def _user_study(folder: Path) -> definition.StudyDefinition:
    """A study with its own builder, loader package and data file, beside a database, an
    artifact folder and code it does not name."""
    folder.mkdir()
    (folder / "tiny.toml").write_text("")
    (folder / "builders.py").write_text("def build(): ...\n")
    (folder / "loaders").mkdir()
    (folder / "loaders" / "__init__.py").write_text("")
    (folder / "loaders" / "mnist.py").write_text("def load(): ...\n")
    (folder / "loaders" / "__pycache__").mkdir()
    (folder / "digits.npz").write_bytes(b"npz")
    (folder / "other.py").write_text("")
    (folder / "tiny.db").write_bytes(b"SQLite format 3\0")
    (folder / "tiny.artifacts").mkdir()
    return dataclasses.replace(DEFINITION, file=str(folder / "tiny.toml"),
                               model={"build": "builders:build"},
                               data={"load": "loaders.mnist:load", "path": "digits.npz"})


def test_only_the_study_file_and_what_it_names_reach_the_nodes(tmp_path: Path) -> None:
    study = _user_study(tmp_path / "studies")
    with package.study_package(study) as runtime_env:
        root = Path(runtime_env["working_dir"])
        sent = {str(path.relative_to(root)) for path in root.rglob("*")}
    assert sent == {"tiny.toml", "builders.py", "loaders", "loaders/__init__.py",
                    "loaders/mnist.py", "digits.npz"}
    assert not root.exists()  # uploaded when Ray connected; gone after
    assert package.study_file_name(study) == "tiny.toml"
    with package.study_package(dataclasses.replace(study, file=None)) as nothing:
        assert nothing is None  # a definition made in Python: its modules are installed


def test_the_password_stays_off_the_cluster_and_comes_from_the_node(
        tmp_path: Path, monkeypatch) -> None:
    made = options.make_options(DEFINITION, storage_url=SECRET_URL, cluster="ray", workers=2)
    sent = package.without_password(made)
    assert "s3cret" not in sent.to_json()
    assert sent.storage_url == "postgresql+psycopg://team@db.example:5432/studies"
    monkeypatch.chdir(tmp_path)
    node = package.on_this_node(sent, "tiny.toml", {"OPTUNA_STORAGE": SECRET_URL})
    assert node.storage_url == SECRET_URL and node.cluster is None
    assert node.definition.file == str(tmp_path / "tiny.toml")  # the uploaded copy
    other = SECRET_URL.replace("studies", "other")
    assert package.on_this_node(sent, None, {"OPTUNA_STORAGE": other}).storage_url == \
        sent.storage_url  # another database's password is not this one's: PGPASSWORD's turn


def test_a_worker_gets_its_threads_before_tensorflow_starts() -> None:
    environment = actor.worker_environment({"AWS_ACCESS_KEY_ID": "id"}, threads=4)
    assert environment["TF_NUM_INTRAOP_THREADS"] == "4"
    assert environment["TF_NUM_INTEROP_THREADS"] == "2"
    assert environment["OMP_NUM_THREADS"] == "4"
    assert environment["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert environment["AWS_ACCESS_KEY_ID"] == "id"  # credentials: the node's own


@pytest.mark.parametrize(("url", "artifacts", "nodes", "expected"), [
    ("sqlite:///x.db", "s3://bucket/x", 1, None),  # one node: it reaches its own files
    ("sqlite:///x.db", "s3://bucket/x", 2, "is a SQLite file"),
    (SECRET_URL, "/mnt/store", 3, "is a folder"),
    (SECRET_URL, "s3://bucket/x", 3, None),
])
def test_what_other_nodes_cannot_reach_is_refused(url, artifacts, nodes, expected) -> None:
    made = options.make_options(DEFINITION, storage_url=url, artifacts=artifacts,
                                cluster="ray", workers=2)
    if expected is None:
        joining._refuse_unreachable(made, nodes)
        return
    with pytest.raises(SearchError, match=expected) as refused:
        joining._refuse_unreachable(made, nodes)
    assert "s3cret" not in str(refused.value)


def test_a_worker_no_node_can_hold_is_refused() -> None:
    nodes = [{"CPU": 0.0}, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0}]
    fits = options.make_options(DEFINITION, cluster="ray", threads=4, gpus_per_worker=1)
    joining._refuse_too_big(fits, nodes)
    with pytest.raises(SearchError, match="--gpus-per-worker 2: no node .* has 2 GPUs"):
        joining._refuse_too_big(dataclasses.replace(fits, gpus_per_worker=2), nodes)
    with pytest.raises(SearchError, match="--threads 8: no node .* has 8 CPUs .* is 4"):
        joining._refuse_too_big(dataclasses.replace(fits, threads=8), nodes)


def test_auto_workers_on_a_cluster_fill_its_free_cpus_and_gpus() -> None:
    class FakeRay:
        free: dict[str, float] = {}

        def available_resources(self) -> dict[str, float]:
            return self.free

    ray = FakeRay()
    made = options.make_options(DEFINITION, cluster="ray", workers="auto", threads=2)
    ray.free = {"CPU": 7.0}
    assert joining._auto_workers(ray, made) == 3
    ray.free = {"CPU": 7.0, "GPU": 2.0}
    assert joining._auto_workers(ray, dataclasses.replace(made, gpus_per_worker=1)) == 2
    ray.free = {"CPU": 1.0}
    with pytest.raises(SearchError, match="no room free now"):
        joining._auto_workers(ray, made)


def test_a_ray_client_address_is_refused_in_one_line(monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "ray://head.example:10001")
    with pytest.raises(SearchError, match="is a Ray Client address, which --cluster does not"):
        joining._address()
