"""The plain Keras loop against the service's trial path: same model, data, seeds, process.

The plain loop is what tutorials and the Optuna examples do: ``model.fit`` on numpy arrays
with ``validation_data``. The service's path is a real study: SQLite storage, claims,
checkpoints and the objective, as ``python -m search.run`` runs it. ``scripts/bench.py`` is
the command; these functions run one study each way and format the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import keras
import optuna
import tensorflow as tf
from search.checkpoints import CheckpointStore
from search.model import build_model
from search.objective import Objective

from search import artifacts, runner, training
from search import run as run_module
from search.data import Dataset
from search.definition import StudyDefinition
from search.errors import SearchError

Point = tuple[float, int]  # (learning_rate, batch_size)


@dataclasses.dataclass
class StudyRun:
    """One study run one way: wall time, final validation accuracy and epoch times."""

    method: str
    seed: int
    seconds: float  # wall time
    accuracy: dict[Point, float]
    epoch_seconds: dict[int, list[float]]  # batch size -> epochs after each trial's first
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    memory_mb: list[float] = dataclasses.field(default_factory=list)  # after each trial
    cpu_seconds: float = 0.0  # this process's CPU time: what other programs can't inflate


def points(definition: StudyDefinition) -> list[Point]:
    """The grid points, in the order a study runs them."""
    return [(point["learning_rate"], point["batch_size"]) for point in definition.grid]


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def run_plain(definition: StudyDefinition, data: Dataset, grid: list[Point]) -> StudyRun:
    """Each point as the tutorials train it: ``model.fit`` on numpy arrays."""
    run = StudyRun("plain", definition.seed, 0.0, {}, defaultdict(list))
    started, cpu_started = time.perf_counter(), time.process_time()
    for learning_rate, batch_size in grid:
        keras.backend.clear_session()
        keras.utils.set_random_seed(definition.seed)
        model = build_model(definition.hidden_units, learning_rate)
        timer = _EpochTimer()
        history = model.fit(data.x_train, data.y_train, batch_size=batch_size,
                            epochs=definition.epochs, validation_data=(data.x_valid, data.y_valid),
                            callbacks=[timer], verbose=0)
        run.accuracy[learning_rate, batch_size] = history.history["val_accuracy"][-1]
        run.epoch_seconds[batch_size] += _after_first(timer.seconds)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run


def _after_first(epoch_seconds: list[float]) -> list[float]:
    """A trial's epochs but the first, which pays for tracing (plain) or compiling."""
    return epoch_seconds[1:] or epoch_seconds


def _memory_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


class _Profile:
    """Wall time per phase of the service's path, measured by wrapping the functions."""

    def __init__(self, memory_mb: list[float]) -> None:
        self.memory_mb = memory_mb
        self.seconds: dict[str, float] = defaultdict(float)
        self.epochs: list[tuple[int, float]] = []  # (batch size, training seconds)
        self.evaluations: list[float] = []

    def _wrap(self, owner: Any, name: str, record: Any) -> mock._patch:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                record(args, kwargs, time.perf_counter() - started)

        return mock.patch.object(owner, name, timed)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        def add(phase: str) -> Any:
            return lambda args, kwargs, seconds: self.seconds.__setitem__(
                phase, self.seconds[phase] + seconds)

        wrappers = [
            self._wrap(training.CompiledLoop, "train_epoch", lambda args, kwargs, seconds:
                       self.epochs.append((kwargs.get("batch_size") or args[4], seconds))),
            self._wrap(training.CompiledLoop, "evaluate",
                       lambda args, kwargs, seconds: self.evaluations.append(seconds)),
            self._wrap(CheckpointStore, "save", add("storage: checkpoints")),
            self._wrap(optuna.Trial, "report", add("storage: optuna writes")),
            self._wrap(optuna.Trial, "set_user_attr", add("storage: optuna writes")),
            self._wrap(artifacts.TrialArtifacts, "__call__", add("dashboard: trial figures")),
            self._wrap(artifacts.StudyNote, "__call__", add("dashboard: study note")),
            self._wrap(Objective, "__call__",
                       lambda args, kwargs, seconds: self.memory_mb.append(_memory_mb())),
        ]
        with contextlib.ExitStack() as stack:
            for wrapper in wrappers:
                stack.enter_context(wrapper)
            yield

    def phases(self, total: float) -> dict[str, float]:
        """Seconds per phase; compile is each shape's first call less a typical later one."""
        by_size: dict[int, list[float]] = defaultdict(list)
        for batch_size, seconds in self.epochs:
            by_size[batch_size].append(seconds)
        compiling = sum(_first_extra(times) for times in by_size.values())
        compiling += _first_extra(self.evaluations)
        phases = {
            "compile (first call of each shape)": compiling,
            "train steps": sum(seconds for _, seconds in self.epochs)
            - sum(_first_extra(times) for times in by_size.values()),
            "validation and test": sum(self.evaluations) - _first_extra(self.evaluations),
            **self.seconds,
        }
        phases["other (data, model builds, claims, trial records, report)"] = (
            total - sum(phases.values()))
        return phases


def _first_extra(times: list[float]) -> float:
    return times[0] - statistics.median(times[1:]) if len(times) > 1 else 0.0


def restrict(definition: StudyDefinition, pairs: int) -> StudyDefinition:
    """The first ``pairs`` grid points, rounded up to whole rows of learning rates."""
    batch_sizes = definition.search_space["batch_size"]
    rows = -(-pairs // len(batch_sizes))
    space = {**definition.search_space,
             "learning_rate": definition.search_space["learning_rate"][:rows]}
    return dataclasses.replace(definition, search_space=space)


def _toml(definition: StudyDefinition) -> str:
    training_table = {"epochs": definition.epochs, "hidden_units": definition.hidden_units,
                      "validation_size": definition.validation_size, "seed": definition.seed,
                      "max_attempts": definition.max_attempts}
    if definition.train_size is not None:
        training_table["train_size"] = definition.train_size
    lines = ["[search_space]"]
    lines += [f"{name} = {json.dumps(values)}" for name, values in
              definition.search_space.items()]
    lines += ["", "[training]"]
    lines += [f"{name} = {json.dumps(value)}" for name, value in training_table.items()]
    return "\n".join(lines) + "\n"


def run_service(definition: StudyDefinition, data_dir: str | None) -> StudyRun:
    """The study as ``python -m search.run --study NAME`` runs it, from a cold start.

    The real command's function (``search.runner.run``) in this process: it reads the data,
    opens a fresh SQLite file, trains, checkpoints, attaches figures and prints the report
    (captured, not shown). Only TensorFlow's import and start-up are not part of its time.
    """
    training.clear_compiled()
    run = StudyRun("service", definition.seed, 0.0, {}, defaultdict(list))
    profile = _Profile(run.memory_mb)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"{definition.name}.toml").write_text(_toml(definition))
        url = f"sqlite:///{folder}/{definition.name}.db"
        args = runner_args(definition.name, url, data_dir, Path(folder))
        started, cpu_started = time.perf_counter(), time.process_time()
        with profile.active(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as errors:
            code = runner.run(args)
        run.seconds = time.perf_counter() - started
        run.cpu_seconds = time.process_time() - cpu_started
        if code != 0:
            last = "\n".join(errors.getvalue().strip().splitlines()[-3:])
            raise SearchError(f"the service's study failed (exit {code}): {last}")
        storage = optuna.storages.RDBStorage(url)
        for trial in optuna.load_study(study_name=definition.name, storage=storage).get_trials():
            point = (trial.params["learning_rate"], trial.params["batch_size"])
            run.accuracy[point] = trial.value
            run.epoch_seconds[point[1]] += _after_first(trial.user_attrs["epoch_seconds"])
        storage.engine.dispose()
    run.phases = profile.phases(run.seconds)
    return run


def runner_args(study_name: str, url: str, data_dir: str | None,
                studies_dir: Path) -> argparse.Namespace:
    """What ``python -m search.run --study NAME --storage URL`` parses to."""
    return run_module.build_parser().parse_args(
        ["--study", study_name, "--storage", url, "--studies-dir", str(studies_dir)]
        + (["--data-dir", data_dir] if data_dir else []))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    threads = tf.config.threading
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores; TensorFlow "
            f"{tf.__version__}, Keras {keras.__version__}; intra-op threads "
            f"{threads.get_intra_op_parallelism_threads()}, inter-op "
            f"{threads.get_inter_op_parallelism_threads()}")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report(plain: list[StudyRun], service: list[StudyRun], grid: list[Point]) -> str:
    """The benchmark's results as markdown tables, ready for the README."""
    lines = ["| batch size | plain epoch (s) | service epoch (s) | speed-up |",
             "|---:|---:|---:|---:|"]
    for batch_size in sorted({size for _, size in grid}):
        slow = statistics.median([s for run in plain for s in run.epoch_seconds[batch_size]])
        fast = statistics.median([s for run in service for s in run.epoch_seconds[batch_size]])
        lines.append(f"| {batch_size} | {slow:.2f} | {fast:.2f} | {slow / fast:.1f}x |")
    lines += ["", "| study (seed) | plain (s) | service (s) | speed-up | plain CPU (s) | "
              "service CPU (s) |", "|---|---:|---:|---:|---:|---:|"]
    for slow, fast in zip(plain, service, strict=True):
        lines.append(f"| {len(grid)} pairs (seed {slow.seed}) | {slow.seconds:.1f} | "
                     f"{fast.seconds:.1f} | {slow.seconds / fast.seconds:.1f}x | "
                     f"{slow.cpu_seconds:.1f} | {fast.cpu_seconds:.1f} |")
    lines += ["", "| learning rate | batch size | plain val acc | service val acc | "
              "difference (pp) | plain, seed to seed (pp) |", "|---:|---:|---:|---:|---:|---:|"]
    for point in grid:
        slow = [run.accuracy[point] for run in plain]
        fast = _mean([run.accuracy[point] for run in service])
        lines.append(f"| {point[0]:g} | {point[1]} | {_mean(slow):.4f} | {fast:.4f} | "
                     f"{100 * (fast - _mean(slow)):+.2f} | {100 * (max(slow) - min(slow)):.2f} |")
    lines.append(f"\nvalidation accuracy after the last epoch, mean of {len(plain)} seed(s); "
                 "the last column is the plain loop's own range across seeds")
    return "\n".join(lines)


def profile_report(run: StudyRun) -> str:
    """Where the service's study time went, phase by phase, and its memory per trial."""
    lines = [f"| phase (service, seed {run.seed}, cold start) | seconds | share |",
             "|---|---:|---:|"]
    for phase, seconds in run.phases.items():
        lines.append(f"| {phase} | {seconds:.1f} | {100 * seconds / run.seconds:.0f}% |")
    lines.append(f"| total | {run.seconds:.1f} | 100% |")
    epochs = ", ".join(f"batch {size}: {statistics.median(times):.2f} s"
                       for size, times in sorted(run.epoch_seconds.items()))
    memory = ", ".join(f"{value:.0f}" for value in run.memory_mb)
    return "\n".join(lines) + (
        f"\n\nCPU time {run.cpu_seconds:.1f} s (wall {run.seconds:.1f} s)\n"
        f"epoch (median, training + validation): {epochs}\n"
        f"resident memory after each trial (MB): {memory}")
