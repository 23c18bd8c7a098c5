"""The study as a user runs it against the plain Keras loop, and both against the arithmetic.

    python scripts/bench.py                        # the README's numbers: the mnist study
    python scripts/bench.py --epochs 1 --train-size 5000 --repeats 1   # a quick check

In one run, one after the other on the same machine:
1. the rate TensorFlow reaches on a large matrix product here (all cores), and the floor it
   implies for the study's arithmetic (forward and backward passes of every trial);
2. the service: ``python -m search.run --study NAME`` with its defaults, in a subprocess, on
   a fresh SQLite file: wall time from start to final table, peak memory (PSS) of the whole
   process tree (sampled), and where the time went (from what the trials stored);
3. the plain loop: ``model.fit`` on numpy arrays with ``validation_data``, as tutorials and
   the Optuna examples train, with TensorFlow's default threads, on replicate 0 of every
   grid point; its time is scaled by the replicates (said in the output);
4. the tuned loop: the same, compiled with ``jit_compile=True, steps_per_execution=32``
   (``bench_parts.TUNED_FIT``), the fastest ``model.fit`` settings for this MLP.
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
from search import cli, data, definition  # noqa: E402
from search.errors import SearchError  # noqa: E402
from search.worker import process  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python scripts/bench.py", __doc__)
    parser.add_argument("--study", default="mnist", metavar="NAME",
                        help="the definition whose grid and budget to use (default mnist)")
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


def bench_definition(args: argparse.Namespace) -> tuple[definition.StudyDefinition, str]:
    """The definition to measure, written as a TOML file the service can read."""
    loaded = definition.load(args.study)
    text = loaded.source
    for key, value in (("epochs", args.epochs), ("train_size", args.train_size),
                       ("repeats", args.repeats)):
        if value is not None:
            text = bench_parts.set_training_key(text, key, value)
    return definition.parse(text, f"{args.study}-bench", "bench"), text


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
    measured, text = bench_definition(args)
    print(f"machine: {bench_parts.machine()}", flush=True)
    rate = bench_parts.gemm_rate()
    raw = data.load_raw(args.data_dir)
    sizes = data.split(raw, measured.validation_size, measured.seed, measured.train_size)
    floor = bench_parts.study_flops(measured, sizes.describe()) / rate
    trials = len(measured.grid) * measured.repeats
    print(f"large matrix product: {rate / 1e9:.0f} GFLOP/s on all cores; the study's "
          f"{trials} trials are a floor of {floor:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        service = bench_parts.run_service(measured, text, Path(folder), args.workers,
                                          args.data_dir)
    print(f"service: {service.seconds:.1f} s wall, peak memory {service.peak_mb:.0f} MB "
          f"(all its processes, PSS), {service.trials} trials", flush=True)
    print(bench_parts.profile_table(service), flush=True)
    if not args.skip_plain:
        loops = {"plain": bench_parts.run_plain(measured, sizes),
                 "tuned": bench_parts.run_plain(measured, sizes, bench_parts.TUNED_FIT)}
        print_comparison(measured, service, loops, floor, rate)
    return 0


def print_comparison(measured: definition.StudyDefinition, service: bench_parts.ServiceRun,
                     loops: dict[str, bench_parts.PlainRun], floor: float, rate: float) -> None:
    trials = len(measured.grid) * measured.repeats
    scaled = {name: loop.seconds * measured.repeats for name, loop in loops.items()}
    print(f"\nthe loops ran replicate 0 of the {len(measured.grid)} points; their times are "
          f"scaled x{measured.repeats} to the study's {trials} trials (not run)")
    print("| measure | value |\n|---|---:|")
    print(f"| plain model.fit, {trials} trials (scaled) | {scaled['plain']:.1f} s |")
    print(f"| tuned model.fit ({bench_parts.TUNED_FIT}), scaled | {scaled['tuned']:.1f} s |")
    print(f"| service, {trials} trials | {service.seconds:.1f} s |")
    print(f"| speed-up over plain | {scaled['plain'] / service.seconds:.1f}x |")
    print(f"| speed-up over tuned | {scaled['tuned'] / service.seconds:.1f}x |")
    print(f"| arithmetic floor ({rate / 1e9:.0f} GFLOP/s) | {floor:.1f} s |")
    print(f"| service / floor | {service.seconds / floor:.2f}x |")
    print(f"| peak memory (service, all processes, PSS) | {service.peak_mb:.0f} MB |")
    print("\n| point | plain val acc (replicate 0) | tuned val acc (replicate 0) | "
          "service mean val acc | service std |\n|---|---:|---:|---:|---:|")
    for params, accuracy in loops["plain"].accuracy.items():
        values = service.accuracy.get(params, [])
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        mean = statistics.fmean(values) if values else float("nan")
        print(f"| {params} | {accuracy:.4f} | {loops['tuned'].accuracy[params]:.4f} | "
              f"{mean:.4f} | {spread:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
