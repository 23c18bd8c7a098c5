"""The manual's pictures, drawn by code rather than by hand.

    python scripts/docs_pictures.py                      # the claim/resume diagram
    python scripts/docs_pictures.py --study mnist        # and the report's figures of a
                                                         # stored study, from its storage

The diagram is drawn with matplotlib (the site loads no diagram library from a CDN, so it
works offline). The report's figures come from a real run's storage through
``search.write_figures``, exactly as ``python -m search.report`` writes them; they are
copied to docs/ under the names the pages use.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Each bar: (row, start, end, label, kind), on a schematic time axis (short steps drawn
# wide enough to read): worker A dies in epoch 4; B finds its heartbeat 30 s old and
# continues the unit from the checkpoint of epoch 3.
_BARS = [
    ("worker A", 0, 9, "claim unit 5,\nattempt 0", "claim"),
    ("worker A", 9, 33, "epochs 1-3, a checkpoint\nafter each (state, then pointer)", "train"),
    ("worker A", 33, 41, "epoch 4:\nkilled", "lost"),
    ("claims and heartbeats", 41, 71, "A's heartbeat silent for 30 s:\nits trial is FAIL",
     "wait"),
    ("worker B", 71, 81, "claim unit 5,\nattempt 1", "claim"),
    ("worker B", 81, 91, "restore\nepoch 3", "restore"),
    ("worker B", 91, 130, "epochs 4-10: the same history\nas an uninterrupted run", "train"),
]
_COLOURS = {"claim": "#5c6bc0", "train": "#66bb6a", "lost": "#ef5350", "wait": "#bdbdbd",
            "restore": "#ffa726"}


def claim_diagram(path: Path) -> Path:
    """Two workers, one unit: a claim, a kill, the heartbeat's grace period, the resume."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = ["worker B", "claims and heartbeats", "worker A"]
    figure, axes = pyplot.subplots(figsize=(13, 3.2))
    for worker, start, end, label, kind in _BARS:
        y = rows.index(worker)
        axes.barh(y, end - start, left=start, height=0.6, color=_COLOURS[kind],
                  edgecolor="black", linewidth=0.6)
        axes.text((start + end) / 2, y, label, ha="center", va="center", fontsize=8)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xticks([])
    axes.set_xlabel("time")
    axes.set_title("One unit, claimed exactly once per attempt: killed on A, continued on B "
                   "from its last checkpoint", fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def report_figures(study_name: str, storage_url: str | None) -> list[Path]:
    """The report's figures of a stored study, copied to docs/ as ``STUDY-NAME.png``."""
    import search
    from search.locations import locate_stored

    url = locate_stored(study_name, storage_url).storage_url
    study = search.load_study(url, study_name)
    copied = []
    with tempfile.TemporaryDirectory() as folder:
        for written in search.write_figures(study, folder):
            target = DOCS / f"{study_name}-{Path(written).stem.replace('_', '-')}.png"
            shutil.copyfile(written, target)
            copied.append(target)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", help="also copy this stored study's report figures")
    parser.add_argument("--storage", help="its database URL (default: studies/NAME.db)")
    args = parser.parse_args(argv)
    for path in [claim_diagram(DOCS / "claims-resume.png"),
                 *(report_figures(args.study, args.storage) if args.study else [])]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
