"""Shared fixtures: real MNIST from ../shared/mnist (or $MNIST_DATA), tiny definitions.

The integration modules (they train, start processes, servers or a browser) are marked
``slow``; ``pytest -m "not slow"`` runs the in-memory tier alone.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("MNIST_DATA", REPO.parent / "shared" / "mnist"))


# A real S3-compatible server (moto's, through scripts/start_s3.sh) for the store tests.
SECRET = "test-secret-never-shown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """(endpoint URL, server pid) of a moto server for the whole session, stopped at the end."""
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ModuleNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install moto and boto3 (pip install -e '.[dev]'): {error}")
        pytest.skip(f"no moto/boto3: {error}")
    run_dir, port = tmp_path_factory.mktemp("s3"), free_port()
    env = {**os.environ, "TMPDIR": str(run_dir), "PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = str(REPO / "scripts" / "start_s3.sh")
    url = subprocess.run([script, str(port)], env=env, check=True, capture_output=True,
                         text=True, timeout=60).stdout.strip()
    pid = int((run_dir / f"search-s3-{port}.pid").read_text())
    yield url, pid
    os.kill(pid, signal.SIGCONT)  # a failed pause test must not leave it stopped
    subprocess.run([script, "stop", str(port)], env=env, check=True, timeout=30)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
def s3_env(s3_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The standard AWS variables pointed at moto, and nothing from the developer's ~/.aws."""
    for name, value in {"AWS_ENDPOINT_URL": s3_server[0], "AWS_ACCESS_KEY_ID": "test-key-id",
                        "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server[0]


def new_bucket() -> str:
    import boto3

    bucket = f"search-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session", autouse=True)
def _no_storage_from_the_environment():
    """$OPTUNA_STORAGE comes before a definition's storage: a value in the developer's shell
    must not send the tests' studies (or their subprocesses') into that database; nor
    $SEARCH_CLUSTER their workers onto a Ray cluster."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OPTUNA_STORAGE", raising=False)
        patch.delenv("SEARCH_CLUSTER", raising=False)
        yield


@pytest.fixture(autouse=True)
def _signal_handlers():
    """search.run.main() installs the CLI's Ctrl-C and SIGTERM handling; tests that call it
    in this process must not leave it behind for the rest of the session."""
    from search import signals

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)
    # Nor a noted interrupt: a test that sends one would stop the next test's worker loop.
    signals._interrupted.clear()


@pytest.fixture(autouse=True)
def _no_leftover_runs():
    yield
    from tests.helpers import stop_leftover_runs

    stop_leftover_runs()


@pytest.fixture
def storage(tmp_path: Path):
    """A new SQLite storage opened as a run opens it, for studies built in the test."""
    from tests.helpers import scratch_storage

    opened = scratch_storage(f"sqlite:///{tmp_path}/grid.db")
    yield opened
    opened.rdb.engine.dispose()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST IDX files not found in {MNIST_DIR}; set MNIST_DATA")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_raw(mnist_dir: Path) -> tuple[np.ndarray, ...]:
    from search import data

    return data.load_raw(mnist_dir)


@pytest.fixture(scope="session")
def tiny_data(mnist_raw: tuple[np.ndarray, ...]):
    """600 training and 200 validation images: enough to train, fast to compile."""
    from search import data

    return data.split(mnist_raw, validation_size=200, seed=0, train_size=600)


@pytest.fixture(scope="session")
def slice_data(mnist_raw: tuple[np.ndarray, ...]):
    """2,000 training and 1,000 validation images: enough for accuracy to mean something."""
    from search import data

    return data.split(mnist_raw, validation_size=1000, seed=0, train_size=2000)


def write_definition(folder: Path, name: str = "tiny", *, learning_rates=(0.001, 0.01),
                     batch_sizes=(64,), epochs: int = 1, train_size: int = 600,
                     validation_size: int = 200, max_attempts: int = 2,
                     repeats: int = 1) -> Path:
    """A small study definition in ``folder``; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        [search_space]
        learning_rate = {list(learning_rates)}
        batch_size = {list(batch_sizes)}

        [training]
        epochs = {epochs}
        hidden_units = [16, 8]
        validation_size = {validation_size}
        train_size = {train_size}
        seed = 0
        max_attempts = {max_attempts}
        repeats = {repeats}
        """))
    return path
