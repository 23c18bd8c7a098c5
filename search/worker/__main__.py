"""One worker of ``python -m search.run --workers N``; not a command for people.

It reads its ``RunOptions`` as JSON from standard input (never from its command line, which
``ps`` shows to everyone), runs units until the study is done and exits 0, 130 when
interrupted, 1 on a one-line error.
"""

from __future__ import annotations

import sys

from search.cli import handle_signals_and_errors
from search.options import RunOptions
from search.study import lifecycle
from search.study.storage import open_storage, storage_errors
from search.worker import process


def work(options: RunOptions) -> int:
    storage = open_storage(options.storage_url)
    with storage_errors(options.storage_url):
        study = lifecycle.open_study(storage, options.definition)
    process.run_here(options, storage, study, quiet=True)
    return 0


def main() -> int:
    options = RunOptions.from_json(sys.stdin.read())
    return handle_signals_and_errors(lambda: work(options), verbose=False)


if __name__ == "__main__":
    sys.exit(main())
