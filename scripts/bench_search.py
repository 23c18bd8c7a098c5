"""Quality per hour: this service's samplers and pruner against KerasTuner and plain Optuna,
on the same builders, data, split and epochs per trial.

    python scripts/bench_search.py            # the README's table: regression x3 seeds,
                                              # the keras-io convnet x1 (about an hour)
    python scripts/bench_search.py --quick    # regression, 1 seed, 3 epochs (minutes)

For each study and search seed, each method runs in its own process, one after the other:
KerasTuner's ``Hyperband`` first (``max_epochs`` = the study's epochs, ``factor`` 3; its
trial count is the budget every other method gets), then ``RandomSearch`` and
``BayesianOptimization``, plain Optuna (TPE + ``HyperbandPruner``), and this service
(``python -m search.run``, ``--workers auto``) with random, tpe, and tpe + hyperband, its
confirm stage included in its wall time. Then every method's chosen configuration is
re-trained with ``model.fit`` on the same 5 fresh seeds. Per method: the re-trained score
(mean ± std), the score the method reported for its winner and the inflation (how much
better it looked than its re-training), the epochs trained, the wall time and the peak
memory of its processes (PSS). KerasTuner is a peer, not a dependency:
``pip install keras-tuner tensorboard scikit-learn`` (KerasTuner imports TensorBoard on
TensorFlow; its ``BayesianOptimization`` needs scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.bench_parts import _tree_rss_mb, machine  # noqa: E402
from search import datasets, definition  # noqa: E402
from search.results import table  # noqa: E402
from search.study.storage import load_for_reading  # noqa: E402
from search.training import builders  # noqa: E402
from search.worker import process  # noqa: E402

FRESH_SEEDS = (1001, 1002, 1003, 1004, 1005)
# Each study: its builder module, and the definition every method reads (ranges over
# learning rate, width, dropout and batch size).
STUDIES = {
    "regression": ("regression.py", """\
[model]
build = "regression:build"
layers = 2
[data]
load = "regression:load"
[search_space]
learning_rate = {{low = 0.0001, high = 0.03, log = true}}
units = {{low = 8, high = 128, log = true}}
dropout = {{low = 0.0, high = 0.3}}
batch_size = [32, 64, 128]
[objective]
metric = "val_loss"
[training]
epochs = {epochs}
validation_size = 1000
seed = {seed}
{search}"""),
    "convnet": ("convnet.py", """\
[model]
build = "convnet:build"
[search_space]
learning_rate = {{low = 0.0001, high = 0.01, log = true}}
filters = {{low = 8, high = 32, log = true}}
dropout = {{low = 0.1, high = 0.6}}
batch_size = [32, 64, 128]
[objective]
metric = "val_accuracy"
[training]
epochs = {epochs}
train_size = 3000
validation_size = 1000
seed = {seed}
{search}"""),
}
OURS = {"ours-random": 'sampler = "random"', "ours-tpe": 'sampler = "tpe"',
        "ours-tpe-hyperband": 'sampler = "tpe"\npruner = "hyperband"\n'
                              "pruner_options = {min_resource = 1, reduction_factor = 3}"}
PEERS = ("kt-hyperband", "kt-random", "kt-bayes", "optuna-hyperband")


def write_study(folder: Path, study: str, name: str, epochs: int, seed: int,
                search: str) -> Path:
    module, text = STUDIES[study]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "studies" / module, folder)
    path = folder / f"{name}.toml"
    path.write_text(text.format(epochs=epochs, seed=seed, search=search))
    return path


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its wall seconds and the peak memory of its process tree (MB)."""
    started, peak = time.perf_counter(), 0.0
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    while child.poll() is None:
        peak = max(peak, _tree_rss_mb(child.pid))
        time.sleep(0.25)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} failed: {child.stderr.read()[-1500:]}")
    return time.perf_counter() - started, peak


def run_peer(method: str, file: Path, seed: int, trials: int) -> dict[str, Any]:
    out = file.parent / f"{method}.json"
    seconds, peak = timed([sys.executable, "scripts/search_peers.py", "--method", method,
                           "--definition", str(file), "--seed", str(seed),
                           "--trials", str(trials), "--out", str(out)])
    return {**json.loads(out.read_text()), "seconds": seconds, "peak_mb": peak}


def run_ours(method: str, folder: Path, study: str, epochs: int, seed: int,
             trials: int) -> dict[str, Any]:
    write_study(folder, study, method, epochs, seed, f"repeats = 2\n[search]\n{OURS[method]}\n"
                f"trials = {trials}\nconfirm = 3\nseed = {seed}\n")
    url = f"sqlite:///{folder}/{method}.db"
    seconds, peak = timed([sys.executable, "-m", "search.run", "--study", method,
                           "--studies-dir", str(folder), "--storage", url])
    stored = load_for_reading(url, method)
    best = table.verdict_of(stored).best
    epochs_run = sum(len(t.user_attrs.get("history", {}).get("loss", []))
                     for t in stored.get_trials() if t.state.is_finished())
    return {"config": dict(best.params), "reported": best.mean, "epochs": epochs_run,
            "trials": len(stored.get_trials()), "seconds": seconds, "peak_mb": peak}


def retrain(file: Path, config: dict[str, Any]) -> list[float]:
    """The configuration trained with ``model.fit`` on each fresh seed: its last epoch's
    validation score."""
    import keras

    study = definition.load(file.stem, file.parent)
    data, build = datasets.load(study), builders.builder_of(study)
    found = []
    for seed in FRESH_SEEDS:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build(**study.model_arguments(config))
        history = model.fit(data.x_train, data.y_train, epochs=study.epochs, verbose=0,
                            batch_size=study.batch_size_at(config),
                            validation_data=(data.x_valid, data.y_valid))
        found.append(float(history.history[study.metric][-1]))
    return found


def bench(study: str, seed: int, epochs: int, folder: Path) -> dict[str, dict[str, Any]]:
    """Every method on one study and search seed, then each winner re-trained."""
    # The peers read the same definition (their own search aside): a sampled one, as it has
    # ranges.
    file = write_study(folder / "peers", study, study, epochs, seed,
                       '[search]\nsampler = "random"\ntrials = 1\nconfirm = 0\n')
    results = {"kt-hyperband": run_peer("kt-hyperband", file, seed, 0)}
    trials = results["kt-hyperband"]["trials"]
    print(f"{study} seed {seed}: KerasTuner's Hyperband ran {trials} trials; every method "
          "gets as many", flush=True)
    for method in PEERS[1:]:
        results[method] = run_peer(method, file, seed, trials)
    for method in OURS:
        results[method] = run_ours(method, folder / "ours", study, epochs, seed, trials)
    for method, result in results.items():
        result["retrained"] = retrain(file, result["config"])
        print(f"  {method}: {_row(result, study)}", flush=True)
    return results


def _row(result: dict[str, Any], study: str) -> str:
    scores = result["retrained"]
    better = -1 if STUDIES[study][1].count('"val_loss"') else 1
    inflation = better * (result["reported"] - statistics.fmean(scores))
    return (f"{statistics.fmean(scores):.4f} ± {statistics.stdev(scores):.4f} | "
            f"{result['reported']:.4f} | {inflation:+.4f} | {result['epochs']} | "
            f"{result['seconds']:.0f} s | {result['peak_mb']:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="regression only, 1 seed, 3 epochs: minutes, not an hour")
    args = parser.parse_args()
    process.import_tensorflow_quietly()
    print(f"machine: {machine()}", flush=True)
    plan = [("regression", seed, 3 if args.quick else 9) for seed in
            range(1 if args.quick else 3)] + ([] if args.quick else [("convnet", 0, 9)])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        found = {(study, seed): bench(study, seed, epochs, Path(folder) / f"{study}-{seed}")
                 for study, seed, epochs in plan}
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s\n\n| study | seed | "
          "method | re-trained (5 seeds) | reported | inflation | epochs | wall | peak "
          "memory |\n|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for (study, seed), results in found.items():
        for method, result in results.items():
            print(f"| {study} | {seed} | {method} | {_row(result, study)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
