"""Benchmark the plain Keras loop against the service's trial path, in one process run.

    python scripts/bench.py                 # the README's numbers: 9 pairs x 10 epochs,
                                            # 54,000/6,000 images, 2 seeds (about 20 min)
    python scripts/bench.py --epochs 2 --pairs 3 --train-size 5000 --seeds 1   # quick check

Both ways train the same model (search.model.build_model) on the same split
(search.data.split) with the same seed; seed s means a study whose definition says
``seed = s``. Prints markdown tables: epoch time per batch size, each study's wall time and
the speed-up, the validation accuracy of every grid point, and the service's time per phase.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from search import data, runner  # noqa: E402
from search import definition as definitions  # noqa: E402
from search.errors import SearchError  # noqa: E402
from search.run import _Parser  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python scripts/bench.py", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="mnist", metavar="NAME",
                        help="the definition whose grid and budget to use (default mnist)")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the epochs")
    parser.add_argument("--pairs", type=int, metavar="N",
                        help="only the first N grid points, rounded up to whole rows of "
                             "learning rates (default: all)")
    parser.add_argument("--train-size", type=int, metavar="N",
                        help="only N training images (default: the definition's)")
    parser.add_argument("--seeds", type=int, default=2, metavar="N",
                        help="seeds 0..N-1; accuracy is their mean (default 2)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads (default: as python -m search.run)")
    parser.add_argument("--service-only", action="store_true",
                        help="skip the plain loop: profile the service's path alone")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the MNIST IDX files (default: $MNIST_DATA)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return run(build_parser().parse_args(argv))
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("absl", "tensorflow", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    for name in ("epochs", "pairs", "train_size", "seeds", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive, not {value}",
                  file=sys.stderr)
            return 2
    runner.configure_threads(args.threads or runner.threads_per_worker(
        argparse.Namespace(threads=None, workers=1)))
    from search import bench  # after the thread settings: it starts TensorFlow

    loaded = definitions.load(args.study)
    base = bench.restrict(loaded.with_overrides(epochs=args.epochs, train_size=args.train_size,
                                                name_suffix="-bench"),
                          args.pairs or len(loaded.grid))
    grid = bench.points(base)
    started = time.perf_counter()
    raw = data.load_raw(args.data_dir)
    print(f"machine: {bench.machine()}\ndata: read in {time.perf_counter() - started:.1f} s "
          "for the plain loop (the service reads it again, inside its time)\n", flush=True)
    plain, service = [], []
    for seed in range(args.seeds):
        definition = dataclasses.replace(base, seed=seed, name=f"{base.name}-seed{seed}")
        if not args.service_only:
            dataset = data.split(raw, definition.validation_size, seed, definition.train_size)
            plain.append(bench.run_plain(definition, dataset, grid))
            print(f"seed {seed}: plain loop {plain[-1].seconds:.1f} s", flush=True)
        service.append(bench.run_service(definition, args.data_dir))
        print(f"seed {seed}: service {service[-1].seconds:.1f} s", flush=True)
    sizes = data.split(raw, base.validation_size, 0, base.train_size).describe()
    print(f"\n{len(grid)} pairs x {base.epochs} epochs, {sizes['train']} training / "
          f"{sizes['valid']} validation images, {args.seeds} seed(s)\n")
    if plain:
        print(bench.report(plain, service, grid) + "\n")
    for run in service:
        print(bench.profile_report(run) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
