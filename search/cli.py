"""What every command-line entry point shares: one-line flag errors, logging, and the way a
run ends (a one-line error, or Ctrl-C/SIGTERM as exit 130 with the resume hint)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

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


class _NoInterruptTracebacks(logging.Filter):
    """A library that logs the KeyboardInterrupt it was stopped by (SQLAlchemy's pool does,
    with its traceback, when Ctrl-C lands while a connection goes back) logs nothing: the
    interrupt is noted, and the command says it was interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            signals.ignore_further_interrupts()
            return False
        return True


def setup_logging(verbose: bool) -> None:
    # Before TensorFlow loads, in this process and the workers it starts (they inherit it):
    # its C++ start-up chatter stays off the terminal unless asked for, by --verbose or by
    # a TF_CPP_MIN_LOG_LEVEL the user set (search.worker.process.import_tensorflow_quietly).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(each, _NoInterruptTracebacks) for each in handler.filters):
            handler.addFilter(_NoInterruptTracebacks())
    for noisy in ("absl", "tensorflow", "optuna"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def handle_signals_and_errors(action: Callable[[], int], verbose: bool) -> int:
    """Run ``action``; a SearchError is one line and exit 1, an interruption exit 130."""
    setup_logging(verbose)
    with signals.interrupts_noted():
        try:
            signals.raise_if_interrupted()  # one that came while the command started
            return action()
        except Interrupted as stop:
            _say_interrupted(stop)
            return 130
        except KeyboardInterrupt:
            signals.ignore_further_interrupts()
            print(RESUME_HINT, file=sys.stderr)
            return 130
        except Exception as error:
            if signals.interrupt_noted():  # its doing: a library turned it into this error
                logging.getLogger(__name__).debug("after the interrupt", exc_info=True)
                signals.ignore_further_interrupts()
                print(RESUME_HINT, file=sys.stderr)
                return 130
            if not isinstance(error, SearchError):
                raise
            print(f"error: {error}", file=sys.stderr)
            return 1


def _say_interrupted(stop: Interrupted) -> None:
    if stop.trial_number is not None:
        print(f"interrupted: trial {stop.trial_number} ({stop.params}) stopped after "
              f"epoch {stop.epochs_done}; its checkpoint is kept. Run the same command "
              "to resume.", file=sys.stderr)
    else:
        print(RESUME_HINT, file=sys.stderr)


def run_command(main: Callable[[], int]) -> NoReturn:
    """What ``python -m search.<command>`` does after its imports (``signals.quiet_start``
    before them): exit with ``main()``'s code, or 130 for a Ctrl-C or SIGTERM that lands
    outside the command's own handling; after it, signals are ignored, so none raises or
    kills while the interpreter shuts down."""
    code = None
    try:
        try:
            code = main()
        finally:
            signals.ignore_from_now()
    except KeyboardInterrupt:
        if code is None:
            print(RESUME_HINT, file=sys.stderr)
    code = 130 if code is None else code
    if signals.interrupt_noted():
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> NoReturn:
    """Exit an interrupted command without the interpreter's shutdown. A KeyboardInterrupt
    that passed through a C extension (an import's ``PyRun_String``) marks CPython to kill
    itself with SIGINT at exit, whatever the code: -2, not 130. And finalizers of what was
    half imported or half built would report errors. What the run stores is written by
    then (commits, files renamed into place); only buffered output is left to flush."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
