"""Studies as a user runs them against the plain Keras loop, and against the arithmetic.

    python scripts/bench.py            # the README's numbers: mnist, mnist-convnet and
                                       # mnist-convnet-small (bench_parts.SMALL_CONVNET)
    python scripts/bench.py --study mnist --epochs 1 --train-size 5000 --repeats 1  # quick

In one run, one after the other on the same machine:
1. the rate TensorFlow reaches on a large matrix product here (all cores); for each study
   the floor it implies for the study's arithmetic (forward and backward passes of every
   trial's dense and convolution layers);
2. the service: ``python -m search.run --study NAME`` with its defaults, in a subprocess, on
   a fresh SQLite file: wall time from start to final table, peak memory (PSS) of the whole
   process tree (sampled), and where the time went (from what the trials stored);
3. the plain loop: ``model.fit`` on numpy arrays with ``validation_data``, as tutorials and
   the Optuna examples train, with TensorFlow's default threads, on replicate 0 of every
   grid point; its time is scaled by the replicates (said in the output);
4. the fastest ``model.fit``: for the built-in MLP the same loop compiled with
   ``jit_compile=True, steps_per_execution=32`` (``bench_parts.TUNED_FIT``); for any other
   model plain ``fit`` (for the convnet XLA is 10x slower, and several steps per call
   without it slower too), so its row repeats the plain one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts import bench_parts  # noqa: E402
from search import cli, datasets, definition  # noqa: E402
from search.errors import SearchError  # noqa: E402
from search.worker import process  # noqa: E402

DEFAULT_STUDIES = ["mnist", "mnist-convnet", bench_parts.SMALL_CONVNET]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python scripts/bench.py", __doc__)
    parser.add_argument("--study", action="append", metavar="NAME",
                        help="a definition whose grid and budget to use; repeat for several "
                             f"(default: mnist, mnist-convnet and {bench_parts.SMALL_CONVNET}: "
                             "the keras-io convnet, 4 learning rates x 5 epochs, 24,000 "
                             "images)")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the epochs")
    parser.add_argument("--train-size", type=int, metavar="N",
                        help="only N training images (default: the definition's)")
    parser.add_argument("--repeats", type=int, metavar="K",
                        help="replicates per point (default: the definition's)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="the service's --workers (default auto, as a user runs it)")
    parser.add_argument("--skip-plain", action="store_true",
                        help="time the service alone (no plain or tuned loop)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the MNIST IDX files (default: $MNIST_DATA)")
    return parser


def bench_definition(args: argparse.Namespace,
                     name: str) -> tuple[definition.StudyDefinition, str]:
    """The definition to measure, written as a TOML file the service can read."""
    loaded = bench_parts.load_definition(name)
    text = loaded.source
    for key, value in (("epochs", args.epochs), ("train_size", args.train_size),
                       ("repeats", args.repeats)):
        if value is not None:
            text = bench_parts.set_training_key(text, key, value)
    return definition.parse(text, f"{name}-bench", "bench", loaded.file), text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    cli.setup_logging(verbose=False)
    process.import_tensorflow_quietly()
    print(f"machine: {bench_parts.machine()}", flush=True)
    rate = bench_parts.gemm_rate()
    print(f"large matrix product: {rate / 1e9:.0f} GFLOP/s on all cores", flush=True)
    rows = [bench_study(args, name, rate) for name in args.study or DEFAULT_STUDIES]
    if not args.skip_plain:
        print("\n| study | trials | service | plain fit | fastest fit | over plain | "
              "over fastest | floor | service / floor |\n|---|---:|---:|---:|---:|---:|---:|"
              "---:|---:|")
        print("\n".join(rows))
    return 0


def bench_study(args: argparse.Namespace, name: str, rate: float) -> str:
    """Measure one study; its row of the summary table."""
    measured, text = bench_definition(args, name)
    loaded = datasets.load(measured, args.data_dir)
    floor = bench_parts.study_flops(measured, loaded.describe()) / rate
    trials = len(measured.grid) * measured.repeats
    print(f"\n## {name}: {trials} trials, the arithmetic's floor {floor:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        service = bench_parts.run_service(measured, text, Path(folder), args.workers,
                                          args.data_dir)
    print(f"service: {service.seconds:.1f} s wall, peak memory {service.peak_mb:.0f} MB "
          f"(all its processes, PSS), {service.trials} trials", flush=True)
    print(bench_parts.profile_table(service), flush=True)
    if args.skip_plain:
        return ""
    plain = bench_parts.run_plain(measured, loaded)
    tuned = plain if measured.model is not None \
        else bench_parts.run_plain(measured, loaded, bench_parts.TUNED_FIT)
    print_accuracies(measured, service, {"plain": plain, "fastest": tuned})
    scaled = {name: loop.seconds * measured.repeats
              for name, loop in (("plain", plain), ("fastest", tuned))}
    return (f"| {name} | {trials} | {service.seconds:.1f} s | {scaled['plain']:.1f} s | "
            f"{scaled['fastest']:.1f} s | {scaled['plain'] / service.seconds:.1f}x | "
            f"{scaled['fastest'] / service.seconds:.1f}x | {floor:.1f} s | "
            f"{service.seconds / floor:.1f}x |")


def print_accuracies(measured: definition.StudyDefinition, service: bench_parts.ServiceRun,
                     loops: dict[str, bench_parts.PlainRun]) -> None:
    print(f"the loops ran replicate 0 of the {len(measured.grid)} points; their times are "
          f"scaled x{measured.repeats} to the study's trials (not run): plain "
          f"{loops['plain'].seconds:.1f} s, fastest fit {loops['fastest'].seconds:.1f} s")
    metric = measured.metric
    print(f"\n| point | plain {metric} (replicate 0) | fastest fit {metric} (replicate 0) | "
          f"service mean {metric} | service std |\n|---|---:|---:|---:|---:|")
    for params, value in loops["plain"].accuracy.items():
        values = service.accuracy.get(params, [])
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        mean = statistics.fmean(values) if values else float("nan")
        print(f"| {params} | {value:.4f} | {loops['fastest'].accuracy[params]:.4f} | "
              f"{mean:.4f} | {spread:.4f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
