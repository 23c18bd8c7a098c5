"""Run a study: ``python -m search.run --study mnist``.

Rerunning the same command continues an interrupted study; on a finished study it only
prints the results. ``--help`` lists every option.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

# Before TensorFlow is imported anywhere: keep its C++ start-up chatter off the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from search import runner, study  # noqa: E402
from search.errors import SearchError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m search.run", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, metavar="NAME",
                        help="the study to run: studies/NAME.toml")
    parser.add_argument("--storage", metavar="URL",
                        help="SQLAlchemy database URL (default: the definition's [storage] url, "
                             "else sqlite:///studies/NAME.db)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the four MNIST IDX files (.gz or not); default: "
                             "$MNIST_DATA, else keras.datasets.mnist (downloads)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="override the definition's epochs (stored as study NAME-epochsN)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {runner.QUICK_TRAIN_SIZE} training images, 1 epoch, "
                             "stored as study NAME-quick")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on this machine sharing the study (default 1)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads per worker (default 1: faster for this MLP)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the stored study, its checkpoints and claims, then start "
                             "over")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run grid points given up after max_attempts errors again "
                             "(their failed trials are kept)")
    parser.add_argument("--studies-dir", type=Path, metavar="DIR",
                        help="where definitions live (default: the project's studies/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    parser.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)
    return parser


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a terminated run is recorded like Ctrl-C: resumable


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not args.verbose else logging.INFO)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return runner.run(args)
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        study.ignore_further_interrupts()
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
