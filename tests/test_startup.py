"""A run's start-up: the other workers start at once, and until the check has passed they
store and claim nothing; bad input or Ctrl-C at any moment of it leaves no process and no
file behind; TensorFlow's start-up lines stay off the terminal unless asked for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import write_definition
from tests.helpers import start_run, trials

pytestmark = pytest.mark.slow

MODULE = '''
import keras


def build(learning_rate):
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
'''
STUDY = """\
[model]
build = "startupmodel:build"
[search_space]
learning_rate = [0.001, 0.01]
[objective]
metric = "{metric}"
[training]
epochs = 2
batch_size = 64
train_size = 20000
validation_size = 500
"""
TENSORFLOW_LINES = ("oneDNN", "cudart_stub", "cuda drivers")


def model_study(folder: Path, metric: str = "val_accuracy") -> Path:
    """A [model] study on MNIST; with a metric the model does not report, it fails its check
    once TensorFlow, the data and the builder have loaded."""
    folder.mkdir(parents=True)
    (folder / "startupmodel.py").write_text(MODULE)
    (folder / "startup.toml").write_text(STUDY.format(metric=metric))
    return folder


def session(leader: int) -> dict[int, str]:
    """The processes of the run's session (its workers keep it, even orphaned): command
    lines by process id."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == leader and fields[0] != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(
                        errors="replace").replace("\0", " ")
            except (OSError, IndexError, ValueError):
                continue
    return found


class Watched:
    """A run started as a user starts it, its stderr read line by line as it comes."""

    def __init__(self, *args: str, data_dir: Path) -> None:
        self.process = start_run(*args, data_dir=data_dir)
        self.lines: list[str] = []
        self.workers: set[int] = set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_until(self, condition, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, "\n".join(self.lines)
            self.workers |= {pid for pid, line in session(self.process.pid).items()
                             if "search.worker" in line}
            time.sleep(0.02)

    def worker_started(self) -> bool:
        return bool(self.workers)

    def said(self, text: str):
        return lambda: any(text in line for line in self.lines)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        left = session(self.process.pid)
        assert left == {}, f"left behind: {left}"
        assert not any(Path(f"/proc/{pid}").exists() for pid in self.workers)
        return code, "\n".join(self.lines)


@pytest.fixture(autouse=True)
def _tensorflow_level_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a user's shell: the run decides whether TensorFlow's lines show."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)


@pytest.mark.parametrize("case", ["data missing", "builder check fails", "verbose"])
def test_a_failed_check_ends_the_early_workers_and_stores_nothing(tmp_path, mnist_dir, case):
    url = f"sqlite:///{tmp_path}/new.db"
    if case == "data missing":  # the MLP reads MNIST at once: the workers are still importing
        studies = tmp_path / "studies"
        write_definition(studies, "startup")
        data_dir = tmp_path / "no-mnist"
    else:
        studies, data_dir = model_study(tmp_path / "studies", metric="val_auc"), mnist_dir
    verbose = ["--verbose"] if case == "verbose" else []
    run = Watched("startup", url, studies, "--workers", "3", *verbose, data_dir=data_dir)
    if case != "data missing":  # that one ends too soon to be watched
        run.wait_until(run.worker_started)
    code, stderr = run.finish()
    assert code == 1 and "Traceback" not in stderr
    error = stderr.splitlines()[-1]
    assert error.startswith("error: ") and ("no-mnist" in error or "val_auc" in error)
    if case == "verbose":  # asked for: TensorFlow's own lines are shown
        assert any(text in stderr for text in TENSORFLOW_LINES)
    else:
        assert stderr.splitlines() == [error]
    # Nothing stored: no database file, no artifact folder, no study.
    assert [path.name for path in tmp_path.iterdir()] == ["studies"]
    assert sorted(path.name for path in studies.iterdir()) == sorted(
        ["startup.toml", *(["startupmodel.py"] if case != "data missing" else [])])


@pytest.mark.parametrize("moment", ["workers start", "imports", "after the go",
                                    "terminated alone"])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_and_leaves_no_process(
        tmp_path, mnist_dir, moment):
    url = f"sqlite:///{tmp_path}/new.db"
    studies = model_study(tmp_path / "studies")
    run = Watched("startup", url, studies, "--workers", "2", data_dir=mnist_dir)
    run.wait_until(run.worker_started)
    if moment == "imports":  # this process and the worker both inside TensorFlow's import
        time.sleep(1.5)
    elif moment == "after the go":
        run.wait_until(run.said("starting 2 workers"))
    if moment == "terminated alone":  # as a service manager stops the run: its workers not
        run.process.terminate()
    else:  # as a terminal's Ctrl-C reaches every process of the run
        os.killpg(run.process.pid, signal.SIGINT)
    code, stderr = run.finish()
    assert code == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "run the same command" in stderr.lower()
    assert not any(text in stderr for text in TENSORFLOW_LINES)
    if moment == "after the go":  # stored by then: every trial that started is ended
        assert TrialState.RUNNING not in [t.state for t in trials("startup", url)]
    else:
        assert not (tmp_path / "new.db").exists()
        assert stderr.splitlines() == ["interrupted; run the same command again to resume"]
