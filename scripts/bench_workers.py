"""Wall time of a whole study with 1 and with 2 (or more) workers on this machine.

    python scripts/bench_workers.py --study mnist            # the full grid, for the README
    python scripts/bench_workers.py --study mnist --epochs 2  # a quick check

Each run is the real command, ``python -m search.run --study NAME --workers N``, on a fresh
SQLite file in a temporary folder; the runs follow each other in one invocation, so the
ratio compares like with like on a shared machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def time_study(study: str, workers: int, epochs: int | None, folder: Path) -> float:
    command = [sys.executable, "-m", "search.run", "--study", study, "--workers", str(workers),
               "--storage", f"sqlite:///{folder}/workers{workers}.db"]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="mnist")
    parser.add_argument("--epochs", type=int, help="override the definition's epochs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = {n: time_study(args.study, n, args.epochs, Path(folder)) for n in args.workers}
    base = times[args.workers[0]]
    print("| workers | wall time (s) | speed-up |")
    print("|---:|---:|---:|")
    for workers, seconds in times.items():
        print(f"| {workers} | {seconds:.1f} | {base / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
