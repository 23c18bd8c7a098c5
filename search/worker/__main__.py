"""One worker of ``python -m search.run --workers N``; not a command for people.

It reads its ``RunOptions`` as JSON from standard input (never from its command line, which
``ps`` shows to everyone), trains units until the study is done and exits 0, 130 when
interrupted, 1 on a one-line error.
"""

from __future__ import annotations

import sys

from search import signals

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is no traceback
    signals.quiet_start()

from search import cli, running  # noqa: E402
from search.options import RunOptions  # noqa: E402


def main() -> int:
    options = RunOptions.from_json(sys.stdin.read())

    def work() -> int:
        running.work(options)
        return 0

    return cli.handle_signals_and_errors(work, verbose=False)


if __name__ == "__main__":
    cli.run_command(main)
