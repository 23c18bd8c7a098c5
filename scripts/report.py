"""Report a study from its storage: ``python scripts/report.py --study mnist``.

Prints the table and the best pair, writes the figures (best trial's curves, the
learning-rate x batch-size heatmap, every trial's validation curve) to reports/NAME/, and
with --csv/--json exports the table. It only reads storage: nothing is retrained, and a
study that is still running is reported as far as it got.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search import definition as definitions
from search import report, stored
from search.errors import SearchError
from search.run import _Parser
from search.storage import storage_errors

REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python scripts/report.py", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, metavar="NAME",
                        help="the study to report: studies/NAME.toml (or NAME-quick, ...)")
    parser.add_argument("--storage", metavar="URL",
                        help="SQLAlchemy database URL (default: as python -m search.run)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for the figures (default: reports/NAME/)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the table as CSV")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the table as JSON")
    parser.add_argument("--studies-dir", type=Path, metavar="DIR",
                        help="where definitions live (default: the project's studies/)")
    return parser


def write_report(args: argparse.Namespace) -> list[Path]:
    """Print the summary; write the figures and exports; return the files written."""
    studies_dir = args.studies_dir or definitions.STUDIES_DIR
    url = stored.storage_url(args.study, args.storage, studies_dir)
    study = stored.load_study(url, args.study)
    with storage_errors(url):
        print(report.summary(study))
        table = report.rows(study)
        target = args.out or REPORTS_DIR / args.study
        try:
            written = report.write_figures(study, target)
            for path, export in ((args.csv, report.to_csv), (args.json, report.to_json)):
                if path is not None:
                    path.write_text(export(table), encoding="utf-8")
                    written.append(path)
        except OSError as error:
            raise SearchError(f"cannot write {error.filename or target}: {error.strerror}; "
                              "pick another --out, --csv or --json") from None
    return written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        written = write_report(args)
    except SearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n" + "\n".join(f"wrote {path}" for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
