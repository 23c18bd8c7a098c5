"""The measurements behind ``scripts/bench.py``: machine, matrix-product rate, the study's
arithmetic, the service as a subprocess, and the plain Keras loop."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import optuna

from search.data import Dataset
from search.definition import StudyDefinition
from search.study import points
from search.study.storage import load_for_reading
from search.userdata import UserData

REPO = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor())
    avx512 = "AVX-512" if " avx512f" in cpuinfo else "no AVX-512"
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {avx512}"


def gemm_rate(size: int = 4096, repeats: int = 10) -> float:
    """FLOP/s of a float32 matrix product this large, with TensorFlow's default threads."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()  # warm-up: thread pools, kernel choice
    started = time.perf_counter()
    for _ in range(repeats):
        product = tf.linalg.matmul(a, b)
    product.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def forward_flops(model: object) -> float:
    """Multiply-adds x 2 of one sample's forward pass through the model's dense and 2-D
    convolution layers (the rest is small beside them)."""
    import keras

    from search.training.path_choice import layers_of

    total = 0.0
    for layer in layers_of(model):
        if isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            total += 2 * height * width * math.prod(layer.kernel.shape)
    return total


def study_flops(definition: StudyDefinition, sizes: dict[str, int]) -> float:
    """The arithmetic of every trial: 3 passes (forward, two backward) per training sample
    and epoch, one forward pass per validation sample and epoch and per test sample."""
    import keras

    from search.training.builders import builder_of

    builder, total = builder_of(definition), 0.0
    for point in definition.grid:
        keras.backend.clear_session()
        samples = 3 * sizes["train"] * definition.epochs \
            + sizes["valid"] * definition.epochs + sizes.get("test", 0)
        total += forward_flops(builder(**definition.model_arguments(point))) * samples
    keras.backend.clear_session()
    return total * definition.repeats


# The small convnet study, beside the shipped mnist-convnet: the keras-io convnet
# (studies/convnet.py, dropout at its default 0.5) at 4 learning rates x 5 epochs on 24,000
# images, one replicate. A study of a minute or two, where a run's fixed cost counts.
SMALL_CONVNET = "mnist-convnet-small"


def load_definition(name: str) -> StudyDefinition:
    """A shipped (or ./studies) definition, or the benchmarks' own ``SMALL_CONVNET``."""
    from search import definition

    if name != SMALL_CONVNET:
        return definition.load(name)
    shipped = definition.load("mnist-convnet")
    body = shipped.source[shipped.source.index("[model]"):]
    text = re.sub(r"^learning_rate = .*$", "learning_rate = [0.0003, 0.001, 0.003, 0.01]",
                  "# The keras-io convnet: 4 learning rates x 5 epochs, 24,000 images.\n\n" + body,
                  flags=re.MULTILINE)
    text = re.sub(r"^dropout = .*\n", "", text, flags=re.MULTILINE)
    text = set_training_key(set_training_key(text, "train_size", 24000), "repeats", 1)
    return definition.parse(text, name, f"{name} (scripts/bench_parts.py)", shipped.file)


def set_training_key(text: str, key: str, value: int) -> str:
    """The TOML ``text`` with ``[training] key = value`` set (replaced or added)."""
    line = f"{key} = {value}"
    if re.search(rf"^{key}\s*=", text, flags=re.MULTILINE):
        return re.sub(rf"^{key}\s*=.*$", line, text, flags=re.MULTILINE)
    return text.replace("[training]\n", f"[training]\n{line}\n")


def _proportional_kb(process: Path) -> int:
    """The process's proportional set size (PSS): its resident memory, each page shared with
    other processes (TensorFlow's libraries, in every worker) divided among them."""
    for line in (process / "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _tree_rss_mb(root: int) -> float:
    """Physical memory of ``root`` and every process below it (sum of PSS), in MB."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(below)
        tree |= below
    total = 0
    for pid in tree:  # only these: reading a process's smaps costs the kernel some time
        with contextlib.suppress(OSError, ValueError):
            total += _proportional_kb(Path(f"/proc/{pid}"))
    return total / 1024


@dataclasses.dataclass
class ServiceRun:
    seconds: float
    peak_mb: float
    trials: int
    accuracy: dict[str, list[float]]
    profile: dict[str, float]  # worker-seconds per part
    workers: int


def run_service(definition: StudyDefinition, text: str, folder: Path, workers: str,
                data_dir: str | None) -> ServiceRun:
    """``python -m search.run`` on a fresh SQLite file, as a user runs it."""
    (folder / f"{definition.name}.toml").write_text(text)
    if definition.folder:  # a [model] study's builder module lies beside its file
        for module in Path(definition.folder).glob("*.py"):
            shutil.copy(module, folder)
    url = f"sqlite:///{folder}/{definition.name}.db"
    command = [sys.executable, "-m", "search.run", "--study", definition.name,
               "--studies-dir", str(folder), "--storage", url, "--workers", workers]
    if data_dir:
        command += ["--data-dir", data_dir]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _tree_rss_mb(process.pid))
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"the service failed: {process.stderr.read()[-2000:]}")
    study = load_for_reading(url, definition.name)
    return _summarise(study, seconds, peak)


def _summarise(study: optuna.Study, seconds: float, peak: float) -> ServiceRun:
    trials = [t for t in study.get_trials() if t.state.is_finished()]
    accuracy: dict[str, list[float]] = defaultdict(list)
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = defaultdict(list)
    for trial in trials:
        accuracy[_label(trial.params)].append(trial.value)
        by_worker[trial.system_attrs[points.OWNER]].append(trial)
    epochs = sum(sum(t.user_attrs[points.EPOCH_SECONDS]) for t in trials)
    in_trials = sum(t.duration.total_seconds() for t in trials)
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    gaps = 0.0
    for own in by_worker.values():
        own.sort(key=lambda trial: trial.datetime_start)
        gaps += sum((b.datetime_start - a.datetime_complete).total_seconds()
                    for a, b in zip(own, own[1:], strict=False))
    span = (last - first).total_seconds()
    profile = {
        "training epochs (train steps, validation, first-call compiles)": epochs,
        "rest of each trial (test set, storage writes, checkpoints, figures)":
            in_trials - epochs,
        "between a worker's trials (claims, study note, progress)": gaps,
        "before the first trial and after the last (start-up, data, compile, final table)":
            seconds - span,
    }
    return ServiceRun(seconds, peak, len(trials), dict(accuracy), profile, len(by_worker))


def _label(params: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


def profile_table(run: ServiceRun) -> str:
    lines = [f"| part ({run.workers} worker(s); worker-seconds, except the last) | seconds |",
             "|---|---:|"]
    lines += [f"| {part} | {seconds:.1f} |" for part, seconds in run.profile.items()]
    return "\n".join(lines)


@dataclasses.dataclass
class PlainRun:
    seconds: float
    accuracy: dict[str, float]


# The fair peer: ``model.fit`` tuned as Keras's own guides advise for small models on a
# CPU: XLA compilation and several steps per call into the compiled function.
TUNED_FIT = {"jit_compile": True, "steps_per_execution": 32}


def run_plain(definition: StudyDefinition, data: Dataset | UserData,
              compile_settings: dict | None = None) -> PlainRun:
    """Replicate 0 of each point as the tutorials train it: ``model.fit`` on numpy arrays
    with TensorFlow's default threads; with ``compile_settings`` (``TUNED_FIT``) the model
    is compiled again with them."""
    import keras

    from search.training.builders import builder_of

    builder, accuracy = builder_of(definition), {}
    started = time.perf_counter()
    for point in definition.grid:
        keras.backend.clear_session()
        keras.utils.set_random_seed(definition.seed_for(0))
        model = builder(**definition.model_arguments(point))
        if compile_settings:
            model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"],
                          **compile_settings)
        history = model.fit(data.x_train, data.y_train,
                            batch_size=definition.batch_size_at(point),
                            epochs=definition.epochs, verbose=0,
                            validation_data=(data.x_valid, data.y_valid))
        model.evaluate(data.x_test, data.y_test, verbose=0)  # as the service does
        accuracy[_label(point)] = history.history[definition.metric][-1]
    return PlainRun(time.perf_counter() - started, accuracy)
