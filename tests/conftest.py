"""Shared fixtures: real MNIST from ../shared/mnist (or $MNIST_DATA), tiny definitions.

The integration modules (they train, start processes, servers or a browser) are marked
``slow``; ``pytest -m "not slow"`` runs the in-memory tier alone.
"""

from __future__ import annotations

import os
import random
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("MNIST_DATA", REPO.parent / "shared" / "mnist"))


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session", autouse=True)
def _no_storage_from_the_environment():
    """$OPTUNA_STORAGE comes before a definition's storage: a value in the developer's shell
    must not send the tests' studies (or their subprocesses') into that database."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OPTUNA_STORAGE", raising=False)
        yield


@pytest.fixture(autouse=True)
def _signal_handlers():
    """search.run.main() installs the CLI's Ctrl-C and SIGTERM handling; tests that call it
    in this process must not leave it behind for the rest of the session."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


@pytest.fixture(autouse=True)
def _no_leftover_runs():
    yield
    from tests.helpers import stop_leftover_runs

    stop_leftover_runs()


@pytest.fixture
def storage(tmp_path: Path):
    """A new SQLite storage opened as a run opens it, for studies built in the test."""
    from search.study.storage import open_storage

    opened = open_storage(f"sqlite:///{tmp_path}/grid.db")
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
