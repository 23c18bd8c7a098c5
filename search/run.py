"""Run a study: ``python -m search.run --study mnist``.

Rerunning the same command continues an interrupted study; on a finished study it only
prints the results. ``--help`` lists every option.
"""

from __future__ import annotations

import argparse
import os
import sys

from search import signals

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is no traceback
    signals.quiet_start()

from search import cli, definition, options, running  # noqa: E402


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a number or 'auto'") \
            from None


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python -m search.run", __doc__)
    cli.add_study_flags(parser, "run")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the four MNIST IDX files (.gz or not); default: "
                             "$MNIST_DATA, else keras.datasets.mnist (downloads)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="override the definition's epochs (stored as study NAME-epochsN)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {options.QUICK_TRAIN_SIZE} training images, 1 epoch, "
                             "stored as study NAME-quick")
    parser.add_argument("--repeats", type=int, metavar="K",
                        help="replicates per grid point (default: the definition's repeats); "
                             "raising it on a stored study runs only the new replicates")
    parser.add_argument("--workers", type=_workers, default="auto", metavar="N",
                        help="worker processes on this machine sharing the study; 'auto' "
                             "(the default) starts one per idle core (idle in /proc/stat) of "
                             "those the process may use: its CPU affinity, cut to the CPU "
                             "quota of its cgroups (/proc/self/cgroup: cpu.max, or v1's "
                             "cpu.cfs_quota_us / cpu.cfs_period_us)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads per worker (default 1: faster for this MLP)")
    parser.add_argument("--cluster", metavar="ray",
                        help="run the workers as actors on the Ray cluster this machine "
                             "belongs to ($RAY_ADDRESS names another); --workers auto: one "
                             "per --threads free CPUs of the cluster (default: "
                             "$SEARCH_CLUSTER, else this machine only)")
    parser.add_argument("--gpus-per-worker", type=float, metavar="G",
                        help="with --cluster: GPUs each worker asks the cluster for")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the stored study, its checkpoints and claims, then start "
                             "over")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run units given up after max_attempts errors again "
                             "(their failed trials are kept)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    return parser


def options_from(args: argparse.Namespace) -> options.RunOptions:
    """The flags as the options of a run."""
    studies_dir = args.studies_dir or definition.STUDIES_DIR
    return options.make_options(
        definition.load(args.study, studies_dir), storage_url=args.storage,
        artifacts=args.artifacts,
        studies_dir=studies_dir, data_dir=args.data_dir, workers=args.workers,
        threads=args.threads, epochs=args.epochs, quick=args.quick, repeats=args.repeats,
        fresh=args.fresh, retry_failed=args.retry_failed,
        cluster=args.cluster or os.environ.get("SEARCH_CLUSTER") or None,
        gpus_per_worker=args.gpus_per_worker)


def run_and_print(args: argparse.Namespace) -> int:
    """Run the study, print its table and verdict; the exit code."""
    run_options = options_from(args)
    result = running.run(run_options)
    from search.results import table  # after the run: SciPy need not delay the workers

    print(table.summary(result.study))
    if result.worker_failures:
        print("; ".join(result.worker_failures), file=sys.stderr)
    if result.given_up:
        print(f"{result.given_up} unit(s) failed {run_options.definition.max_attempts} times "
              "(see 'given up:' above); fix the cause, then rerun with --retry-failed "
              "(completed units are kept)", file=sys.stderr)
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.handle_signals_and_errors(lambda: run_and_print(args), args.verbose)


if __name__ == "__main__":
    cli.run_command(main)
