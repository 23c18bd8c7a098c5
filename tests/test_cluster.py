"""``--cluster ray``: the workers as Ray actors on a local multi-node Ray cluster.

One cluster for the module (``ray.cluster_utils.Cluster``, on 127.0.0.1 only): a head with no
CPU, so that it runs no worker, and three worker nodes of one CPU each, sharing this
machine's hostname. A removed node leaves two CPUs: one for the worker that was not on it,
one for its replacement. The study lives in PostgreSQL and moto's S3 server, as on a real
cluster; the nodes get this checkout on their PYTHONPATH (a real cluster's nodes have the
package installed) and the AWS variables in their environment, never through Ray.

Needs PostgreSQL (SEARCH_TEST_POSTGRES_URL), moto and Ray: without them these skip locally
and fail in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO, SECRET, free_port, new_bucket, write_definition
from tests.helpers import (
    complete_by_params,
    postgres_url_or_skip,
    run_to_end,
    running_after_epoch,
    start_run,
    trials,
    wait_for,
)

pytestmark = pytest.mark.slow

NODE_MEMORY = 80 * 2**20  # each node's object store: the workers put nothing in it
NODE_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every node on 127.0.0.1
                    "AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": SECRET,
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's drivers read it as they start: 127.0.0.1 stays 127.0.0.1, not this machine's
    network address."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="module")
def ray_cluster(s3_server, tmp_path_factory: pytest.TempPathFactory):
    none = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as patch:  # the nodes' environment: set as they start
        for name, value in {**NODE_ENVIRONMENT, "AWS_ENDPOINT_URL": s3_server[0],
                            "AWS_CONFIG_FILE": str(none),
                            "AWS_SHARED_CREDENTIALS_FILE": str(none),
                            "PYTHONPATH": os.pathsep.join(
                                filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
                            }.items():
            patch.setenv(name, value)
        try:  # imported after RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is set: Ray reads it once
            from ray._private import ray_constants
            from ray.cluster_utils import Cluster
        except ModuleNotFoundError as error:
            if os.environ.get("CI"):
                pytest.fail(f"CI must install Ray (pip install -e '.[dev]'): {error}")
            pytest.skip(f"no Ray: {error}")
        assert not ray_constants.ENABLE_RAY_CLUSTER, "Ray was imported before the test set it"
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "object_store_memory": NODE_MEMORY})
        try:
            for _ in range(3):
                cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
            cluster.wait_for_nodes()
            assert cluster.address.startswith("127.0.0.1:"), cluster.address
            yield cluster
        finally:
            cluster.shutdown()


@pytest.fixture
def on_cluster(ray_cluster, s3_env, monkeypatch: pytest.MonkeyPatch):
    """The driver's environment: the test cluster's address, on loopback."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    return ray_cluster


@pytest.fixture
def postgres_url() -> str:
    return postgres_url_or_skip()


def studies(root: Path, name: str, artifacts: str, **settings) -> Path:
    path = write_definition(root / "studies", name, **settings)
    path.write_text(path.read_text() + f'\n[storage]\nartifacts = "{artifacts}"\n')
    return root / "studies"


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return chain


def _raylets(cluster) -> dict[int, object]:
    return {node.all_processes["raylet"][0].process.pid: node for node in cluster.worker_nodes}


def cluster_processes(cluster) -> list[str]:
    """The actors and worker processes running under the cluster's nodes, now."""
    found, raylets = [], set(_raylets(cluster))
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            continue
        if state != "Z" and ("search.worker" in command or "ClusterWorker" in command) \
                and raylets & set(_ancestors(int(entry.name))):
            found.append(command)
    return found


def assert_no_cluster_processes(cluster) -> None:
    """None is left: Ray ends a killed actor's process a moment after the command ends."""
    deadline = time.monotonic() + 20
    while cluster_processes(cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster_processes(cluster) == []


# The user's builder and loader, in a module beside the study file. Each process that imports
# it notes where from, and what that folder holds.
MODULE = """
import os
from pathlib import Path

import keras
import numpy as np

with open({log!r}, "a") as log:
    here = Path(__file__).resolve().parent
    log.write(f"{{os.getpid()}} {{here}} {{' '.join(sorted(os.listdir(here)))}}\\n")


def load():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2300, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return {{"x_train": x[:2000], "y_train": y[:2000], "x_test": x[2000:], "y_test": y[2000:]}}


def build(learning_rate, units):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
"""
STUDY = """\
[model]
build = "tinymodels:build"
[data]
load = "tinymodels:load"
[search_space]
learning_rate = [0.001, 0.003, 0.01, 0.03]
units = [4, 8]
[training]
epochs = 1
batch_size = 32
validation_size = 200
[storage]
artifacts = "{artifacts}"
"""


def test_eight_units_on_two_workers_each_run_exactly_once(
        on_cluster, postgres_url: str, tmp_path: Path, mnist_dir: Path) -> None:
    name, folder, log = f"ray-{uuid.uuid4().hex[:8]}", tmp_path / "studies", tmp_path / "log"
    folder.mkdir()
    (folder / "tinymodels.py").write_text(MODULE.format(log=str(log)))
    (folder / f"{name}.toml").write_text(STUDY.format(artifacts=f"s3://{new_bucket()}/team"))
    (folder / "old.db").write_bytes(b"SQLite format 3\0")  # what no node needs
    (folder / "old.artifacts").mkdir()
    run = start_run(name, postgres_url, folder, "--cluster", "ray", "--workers", "2",
                    data_dir=mnist_dir)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert len(complete_by_params(name, postgres_url)) == 8  # each once
    ran = trials(name, postgres_url)
    assert [trial.state for trial in ran] == [TrialState.COMPLETE] * 8
    # Two actors on two nodes of one hostname: their owners tell them apart.
    owners = {trial.system_attrs["owner"] for trial in ran}
    assert len(owners) == 2 and len({owner.split("/")[0] for owner in owners}) == 1
    nodes = {line.split()[5] for line in stderr.splitlines()
             if line.startswith("worker ") and " runs on node " in line}
    assert len(nodes) == 2, stderr
    # The command imported the module from the studies folder; each worker from the folder
    # Ray unpacked on its node, holding the study file and the module only.
    imports = dict(line.split(" ", 1) for line in log.read_text().splitlines())
    assert imports.pop(str(run.pid)).startswith(f"{folder} ")
    assert {pid for pid in imports} == {owner.split("/")[2] for owner in owners}
    for where in imports.values():
        place, *files = where.split()
        assert place != str(folder)
        assert set(files) - {"__pycache__"} == {f"{name}.toml", "tinymodels.py"}, where
    assert_no_cluster_processes(on_cluster)


def test_a_unit_on_a_removed_node_resumes_on_another_from_its_checkpoint(
        on_cluster, postgres_url: str, tmp_path: Path, mnist_dir: Path) -> None:
    name, straight = f"ray-lost-{uuid.uuid4().hex[:8]}", f"straight-{uuid.uuid4().hex[:8]}"
    settings = {"learning_rates": (0.001, 0.01), "batch_sizes": (16,), "epochs": 12,
                "train_size": 4000, "validation_size": 500}
    folder = studies(tmp_path / "a", name, f"s3://{new_bucket()}/team", **settings)
    run = start_run(name, postgres_url, folder, "--cluster", "ray", "--workers", "2",
                    data_dir=mnist_dir)
    victim = wait_for(running_after_epoch(name, postgres_url, 2), run, timeout=240)
    pid = int(victim.system_attrs["owner"].split("/")[2])
    raylets = _raylets(on_cluster)
    (node,) = [raylets[ancestor] for ancestor in _ancestors(pid) if ancestor in raylets]
    try:
        on_cluster.remove_node(node, allow_graceful=False)  # the machine is gone at once
        # Meanwhile, the same study uninterrupted, on one machine: the history to match.
        reference = run_to_end(straight, f"sqlite:///{tmp_path}/straight.db",
                               studies(tmp_path / "b", straight, str(tmp_path / "store"),
                                       **settings), data_dir=mnist_dir)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        on_cluster.add_node(num_cpus=1, object_store_memory=NODE_MEMORY)
        on_cluster.wait_for_nodes()
    assert run.returncode == 0, stderr
    assert reference.returncode == 0, reference.stderr
    # The lost actor is replaced ("was lost with its actor; starting another") only if Ray
    # reports the node dead before the other worker, which sees at once that the lost
    # process is gone, has finished the study: on a loaded machine it may not.
    resumed = complete_by_params(name, postgres_url)[tuple(sorted(victim.params.items()))]
    uninterrupted = complete_by_params(straight, f"sqlite:///{tmp_path}/straight.db")[
        tuple(sorted(victim.params.items()))]
    assert 2 <= resumed.user_attrs.get("resumed_from_epoch", 0) < settings["epochs"]
    for metric, values in uninterrupted.user_attrs["history"].items():
        assert resumed.user_attrs["history"][metric] == pytest.approx(values, abs=1e-6)
    states = sorted(trial.state.name for trial in trials(name, postgres_url))
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]  # each unit once, the lost attempt
    assert len(complete_by_params(name, postgres_url)) == 2


def test_ctrl_c_stops_every_actor_and_the_rerun_finishes_exactly(
        on_cluster, postgres_url: str, tmp_path: Path, mnist_dir: Path) -> None:
    name = f"ray-stop-{uuid.uuid4().hex[:8]}"
    folder = studies(tmp_path, name, f"s3://{new_bucket()}/team",
                     learning_rates=(0.001, 0.01), batch_sizes=(16,), epochs=10,
                     train_size=4000, validation_size=500)
    run = start_run(name, postgres_url, folder, "--cluster", "ray", "--workers", "2",
                    data_dir=mnist_dir)
    wait_for(running_after_epoch(name, postgres_url, 1), run, timeout=240)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert_no_cluster_processes(on_cluster)
    stopped = [trial for trial in trials(name, postgres_url) if trial.state != TrialState.COMPLETE]
    assert stopped and all(trial.state == TrialState.FAIL for trial in stopped), stderr
    assert all(trial.user_attrs["failure"].startswith("interrupted") for trial in stopped)

    rerun = run_to_end(name, postgres_url, folder, "--cluster", "ray", "--workers", "2",
                       data_dir=mnist_dir)
    assert rerun.returncode == 0, rerun.stderr
    complete = complete_by_params(name, postgres_url)
    assert len(complete) == 2
    # Each continues from its last checkpoint (one that had finished no epoch, from the
    # start) with the history it had: the trial the interrupt waited on had finished one.
    assert max(trial.user_attrs.get("epochs_done", 0) for trial in stopped) >= 1
    for trial in stopped:
        resumed = complete[tuple(sorted(trial.params.items()))]
        done = trial.user_attrs.get("epochs_done", 0)
        assert resumed.user_attrs.get("resumed_from_epoch", 0) >= done
        assert sorted(resumed.intermediate_values) == list(range(1, 11))
        for epoch in range(1, done + 1):
            assert resumed.intermediate_values[epoch] == trial.intermediate_values[epoch]
    assert_no_cluster_processes(on_cluster)


def _study_names(url: str) -> list[str]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return sorted(summary.study_name for summary in optuna.get_all_study_summaries(storage))
    finally:
        storage.engine.dispose()


def _refused(name: str, url: str, folder: Path, mnist_dir: Path, *extra: str,
             command: list[str] | None = None) -> str:
    flags = ["--study", name, "--storage", url, "--studies-dir", str(folder), "--data-dir",
             str(mnist_dir), "--cluster", "ray", *extra]
    done = subprocess.run([*(command or [sys.executable, "-m", "search.run"]), *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("case", ["sqlite", "folder", "gpus"])
def test_what_other_nodes_cannot_reach_or_no_node_can_hold_is_refused(
        case: str, on_cluster, postgres_url: str, tmp_path: Path, mnist_dir: Path) -> None:
    name, store = f"ray-no-{uuid.uuid4().hex[:8]}", f"s3://{new_bucket()}/team"
    url, extra, expected = postgres_url, [], "no node of the Ray cluster has 1 GPUs"
    if case == "sqlite":
        url, expected = f"sqlite:///{tmp_path}/{name}.db", "is a SQLite file"
    if case == "folder":
        store, expected = str(tmp_path / "store"), "is a folder"
    if case == "gpus":
        extra = ["--gpus-per-worker", "1"]
    before = _study_names(postgres_url)
    line = _refused(name, url, studies(tmp_path, name, store), mnist_dir, *extra)
    assert expected in line and line.startswith("error: "), line
    assert _study_names(postgres_url) == before
    assert not (tmp_path / f"{name}.db").exists() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("case", ["no cluster", "no ray"])
def test_no_cluster_or_no_ray_is_refused(case: str, postgres_url: str, tmp_path: Path,
                                         mnist_dir: Path, monkeypatch) -> None:
    name = f"ray-none-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    command, expected = None, "no Ray cluster answers at 127.0.0.1:"
    if case == "no ray":  # Ray hidden from the command
        command = [sys.executable, "-c", "import sys; sys.modules['ray'] = None; "
                   "from search.run import main; sys.argv[0] = 'search.run'; "
                   "sys.exit(main())"]
        expected = 'pip install "keras-optuna-search[ray]"'
    before = _study_names(postgres_url)
    line = _refused(name, postgres_url, studies(tmp_path, name, "s3://unused/team"),
                    mnist_dir, command=command)
    assert expected in line, line
    assert _study_names(postgres_url) == before
