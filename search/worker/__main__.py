"""One worker of ``python -m search.run --workers N``; not a command for people.

It reads its ``RunOptions`` as one line of JSON from standard input (never from its command
line, which ``ps`` shows to everyone), imports TensorFlow and loads the data, then waits for
a second line, "go", which the process that started it writes once its check has passed.
Without it (the check failed, or the run was stopped) the worker exits 0 having stored and
claimed nothing. After the go it trains units until the study is done and exits 0, 130 when
interrupted, 1 on a one-line error.
"""

from __future__ import annotations

import signal
import sys

from search import signals

if __name__ == "__main__":
    # First of all: a Ctrl-C is only noted until the command runs, never a traceback nor an
    # "Exception ignored" report (signals.quiet_start). Until the go, SIGTERM keeps its
    # default action: the process that started this one ends it so, at once, having stored
    # and claimed nothing. It started with both blocked (search.worker.pool).
    signals.quiet_start()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

from search import cli, running  # noqa: E402
from search.options import RunOptions  # noqa: E402
from search.worker import pool, process  # noqa: E402


def main() -> int:
    verbose = "--verbose" in sys.argv[1:]
    line = sys.stdin.readline()
    if not line:
        return 0
    cli.setup_logging(verbose)
    options = RunOptions.from_json(line)
    try:
        prepared, failure = running.prepare_worker(options), None
    except Exception as error:  # said only after a go: the starting process says it first
        prepared, failure = None, error
    if sys.stdin.readline().strip() != pool.GO:
        return 0
    if signals.interrupt_noted():  # before the go: nothing is stored, so nothing is said
        return 130
    process.startup_moment("told to go")

    def work() -> int:
        if failure is not None:
            raise failure
        running.work(options, prepared)
        return 0

    return cli.handle_signals_and_errors(work, verbose)


if __name__ == "__main__":
    cli.run_command(main)
