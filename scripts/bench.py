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
   grid point; its time is scaled by the replicates (said in the output).
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
                        help="time the service alone (no plain loop)")
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
    flops = bench_parts.study_flops(measured, sizes.describe())
    trials = len(measured.grid) * measured.repeats
    print(f"large matrix product: {rate / 1e9:.0f} GFLOP/s on all cores; the study's "
          f"{trials} trials are {flops / 1e12:.2f} TFLOP, a floor of {flops / rate:.1f} s",
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        service = bench_parts.run_service(measured, text, Path(folder), args.workers,
                                          args.data_dir)
    print(f"service: {service.seconds:.1f} s wall, peak memory {service.peak_mb:.0f} MB "
          f"(all its processes, PSS), {service.trials} trials", flush=True)
    print(bench_parts.profile_table(service), flush=True)
    if args.skip_plain:
        return 0
    plain = bench_parts.run_plain(measured, sizes)
    scaled = plain.seconds * measured.repeats
    print(f"plain loop: {plain.seconds:.1f} s for replicate 0 of the {len(measured.grid)} "
          f"points; x{measured.repeats} replicates = {scaled:.1f} s (scaled, not run)")
    print()
    print("| measure | value |\n|---|---:|")
    print(f"| plain loop, {trials} trials (scaled) | {scaled:.1f} s |")
    print(f"| service, {trials} trials | {service.seconds:.1f} s |")
    print(f"| speed-up | {scaled / service.seconds:.1f}x |")
    print(f"| arithmetic floor ({rate / 1e9:.0f} GFLOP/s) | {flops / rate:.1f} s |")
    print(f"| service / floor | {service.seconds / (flops / rate):.2f}x |")
    print(f"| peak memory (service, all processes, PSS) | {service.peak_mb:.0f} MB |")
    print()
    print("| point | plain val acc (replicate 0) | service mean val acc | service std |")
    print("|---|---:|---:|---:|")
    for params, accuracy in plain.accuracy.items():
        values = service.accuracy.get(params, [])
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        mean = statistics.fmean(values) if values else float("nan")
        print(f"| {params} | {accuracy:.4f} | {mean:.4f} | {spread:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
