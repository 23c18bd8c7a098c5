"""What every command-line entry point shares: one-line flag errors, logging, and the way a
run ends (a one-line error, or Ctrl-C/SIGTERM as exit 130 with the resume hint)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from search import definition, signals
from search.errors import Interrupted, SearchError

RESUME_HINT = "interrupted; run the same command again to resume"


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, description: str | None) -> None:
        super().__init__(prog=prog, description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def add_study_flags(parser: argparse.ArgumentParser, verb: str) -> None:
    """--study, --storage and --studies-dir, which every command reads the same way."""
    shipped = ", ".join(definition.known()[1])
    parser.add_argument("--study", required=True, metavar="NAME",
                        help=f"the study to {verb}: NAME.toml in the studies folder, else a "
                             f"shipped one ({shipped}); NAME-quick and NAME-epochsN name the "
                             "studies --quick and --epochs made")
    parser.add_argument("--storage", metavar="URL",
                        help="SQLAlchemy database URL (default: $OPTUNA_STORAGE, else the "
                             "definition's [storage] url, else the SQLite file NAME.db in the "
                             "studies folder)")
    parser.add_argument("--studies-dir", type=Path, metavar="DIR",
                        help="your definitions, and by default their databases, "
                             "checkpoints and artifacts (default: ./studies, made when "
                             "first needed); shipped definitions are found too")
    parser.add_argument("--artifacts", metavar="LOCATION",
                        help="the artifact store for checkpoints, figures and models: a "
                             "folder or s3://bucket/prefix, credentials from the AWS "
                             "environment (default: $SEARCH_ARTIFACTS, else the definition's "
                             "[storage] artifacts, else NAME.artifacts beside the database)")


def setup_logging(verbose: bool) -> None:
    # Before TensorFlow loads, in this process and the workers it starts (they inherit it):
    # its C++ start-up chatter stays off the terminal unless asked for, by --verbose or by
    # a TF_CPP_MIN_LOG_LEVEL the user set (search.worker.process.import_tensorflow_quietly).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "optuna"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def handle_signals_and_errors(action: Callable[[], int], verbose: bool) -> int:
    """Run ``action``; a SearchError is one line and exit 1, an interruption exit 130."""
    setup_logging(verbose)
    with signals.interrupts_noted():
        try:
            return action()
        except SearchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except Interrupted as stop:
            _say_interrupted(stop)
            return 130
        except KeyboardInterrupt:
            signals.ignore_further_interrupts()
            print(RESUME_HINT, file=sys.stderr)
            return 130


def _say_interrupted(stop: Interrupted) -> None:
    if stop.trial_number is not None:
        print(f"interrupted: trial {stop.trial_number} ({stop.params}) stopped after "
              f"epoch {stop.epochs_done}; its checkpoint is kept. Run the same command "
              "to resume.", file=sys.stderr)
    else:
        print(RESUME_HINT, file=sys.stderr)
