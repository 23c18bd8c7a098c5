"""Run the shipped examples as the manual says and write their output into its pages, with
the date, the CPU and the wall time, so that no hand-edited copy of a verdict is kept.

    MNIST_DATA=../shared/mnist python scripts/readme_examples.py            # every marked one
    MNIST_DATA=../shared/mnist python scripts/readme_examples.py regression

Each example is a block of one page (README.md or a page under docs/) between
``<!-- example: NAME -->`` and ``<!-- /example -->``; this script owns what lies between the
two markers (the text around them is the page's). Every example runs as
``python -m search.run --study NAME --workers auto`` on a fresh SQLite file and artifact
folder in a temporary directory, so a study already stored under ./studies is neither read
nor touched. A run that fails leaves its block as it was and ends the script with its exit
status. The manual's figures of an
example (``FIGURES``) are drawn by ``python -m search.report`` from the same run, so a
picture of the verdict cannot outlive it either.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The pages an example block may stand in: the README and the manual's.
DOCUMENTS = (README, *sorted((REPO / "docs").rglob("*.md")))
# An example's report figures -> where the README shows them.
FIGURES = {
    "mnist": {"heatmap.png": "docs/mnist-heatmap.png",
              "validation_curves.png": "docs/mnist-validation-curves.png",
              "best_point_curves.png": "docs/mnist-best-point-curves.png"},
    "mnist-width-dropout": {"heatmap.png": "docs/width-dropout-heatmap.png"},
}
_BLOCK = re.compile(r"(<!-- example: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /example -->)",
                    re.DOTALL)


def page_of(name: str) -> Path | None:
    """The page holding example ``name``'s block, if any does."""
    return next((page for page in DOCUMENTS if name in marked(page.read_text())), None)


def marked(text: str) -> list[str]:
    """The examples the README marks, in the order they appear."""
    return [match["name"] for match in _BLOCK.finditer(text)]


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with example ``name``'s block replaced by ``body``; ValueError without one."""
    found = [match for match in _BLOCK.finditer(text) if match["name"] == name]
    if len(found) != 1:
        raise ValueError(f"README: expected one '<!-- example: {name} -->' ... "
                         f"'<!-- /example -->' block, found {len(found)}")
    match = found[0]
    return text[:match.start("body")] + body + text[match.end("body"):]


def cpu() -> str:
    """The CPU as lscpu names it, with AVX-512 when it has it, and the cores this process
    may use (what ``--workers auto`` sees)."""
    name, flags = "unknown CPU", ""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        output = ""
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            name = value.strip()
        elif key.strip() == "Flags":
            flags = value
    vector = " with AVX-512" if "avx512f" in flags.split() else ""
    return f"{name}{vector}, {len(os.sched_getaffinity(0))} cores"


def _where(name: str, folder: Path) -> list[str]:
    """The flags that keep an example's storage and artifacts in ``folder``."""
    return ["--study", name, "--storage", f"sqlite:///{folder / (name + '.db')}",
            "--artifacts", str(folder / f"{name}.artifacts")]


def run_example(name: str, folder: Path) -> tuple[str, float]:
    """The example's stdout (the table and the verdict) and its wall seconds; progress on
    stderr is shown as it comes. RuntimeError when the run fails."""
    command = [sys.executable, "-m", "search.run", *_where(name, folder), "--workers", "auto"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{name}: python -m search.run exited {done.returncode}")
    return done.stdout.strip("\n"), seconds


def copy_figures(name: str, folder: Path) -> list[str]:
    """Draw the example's report from its run in ``folder`` and copy the README's figures
    of it into place; the paths written. RuntimeError when the report fails."""
    wanted = FIGURES.get(name, {})
    if not wanted:
        return []
    out = folder / "report"
    command = [sys.executable, "-m", "search.report", *_where(name, folder), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: python -m search.report exited {done.returncode}")
    for figure, target in wanted.items():
        shutil.copyfile(out / figure, REPO / target)
    return list(wanted.values())


def block(name: str, output: str, seconds: float, day: datetime.date, machine: str) -> str:
    """What lies between the markers: the command, when and where it ran, its output."""
    return (f"`python -m search.run --study {name} --workers auto`, on a fresh SQLite file, "
            f"on {day.isoformat()} ({machine}): **{seconds:.1f} s wall**. Its output, written "
            "by `python scripts/readme_examples.py` (not edited by hand):\n\n"
            f"```\n{output}\n```\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="examples to run (default: every marked one)")
    args = parser.parse_args(argv)
    everything = [name for page in DOCUMENTS for name in marked(page.read_text())]
    names = args.names or everything
    unknown = sorted(set(names) - set(everything))
    if unknown:
        parser.error(f"no page has an example block for {', '.join(unknown)}: add "
                     "'<!-- example: NAME -->' and '<!-- /example -->' where it belongs")
    machine = cpu()
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"readme-{name}-") as folder:
            try:
                output, seconds = run_example(name, Path(folder))
                figures = copy_figures(name, Path(folder))
            except RuntimeError as error:
                print(error, file=sys.stderr)
                return 1
        page = page_of(name)
        text = replace_block(page.read_text(), name,
                             block(name, output, seconds, datetime.date.today(), machine))
        page.write_text(text)  # each example as it finishes: a later failure keeps it
        print(f"{name}: {seconds:.1f} s, written to {page.relative_to(REPO)}"
              + "".join(f", {figure}" for figure in figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
