"""Report a study from its storage: ``python -m search.report --study mnist``.

Prints one row per grid point (replicates done, mean, std, 95 % interval of the validation
accuracy, mean test accuracy) and the verdict, writes the figures (the best point's curves,
the grid heatmap, every point's mean validation curve) to reports/NAME/, and with --csv
or --json exports the table (--csv also writes a per-trial FILE.trials.csv). A sampled
study's rows are its confirmed configurations (beside their search values), followed by its
search stage; its figures are the best confirmed configuration's curves and Optuna's plots of
the search trials. --export-model FILE writes the best point's trained model (its replicate
closest to the point's mean validation accuracy; see search.results.export) as a .keras file.
It only reads storage: nothing is retrained, and a study that is still running is reported
as far as it got.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search import signals

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is no traceback
    signals.quiet_start()

import optuna  # noqa: E402

from search import cli, disk_space  # noqa: E402
from search.errors import SearchError  # noqa: E402
from search.locations import locate_stored  # noqa: E402
from search.results import csv_files, figures, table  # noqa: E402
from search.study.storage import load_for_reading, storage_errors  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python -m search.report", __doc__)
    cli.add_study_flags(parser, "report")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for the figures (default: reports/NAME/)")
    parser.add_argument("--csv", type=Path, metavar="FILE",
                        help="write the per-point table as CSV (and FILE.trials.csv per trial)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write the per-point table and the verdict as JSON")
    parser.add_argument("--export-model", type=Path, metavar="FILE",
                        help="write the best point's model (the replicate closest to its mean "
                             "validation accuracy) to FILE, for keras.models.load_model")
    return parser


def _exports(study: optuna.Study, args: argparse.Namespace) -> list[tuple[Path, str]]:
    files = []
    if args.csv is not None:
        trials_file = args.csv.with_name(args.csv.stem + ".trials.csv")
        files += [(args.csv, csv_files.to_csv(study)),
                  (trials_file, csv_files.trials_csv(study))]
    if args.json is not None:
        files.append((args.json, table.to_json(study)))
    return files


def write_report(args: argparse.Namespace) -> list[Path]:
    """Print the summary; write the figures and exports; return the files written."""
    locations = locate_stored(args.study, args.storage, args.studies_dir, args.artifacts)
    url = locations.storage_url
    study = load_for_reading(url, args.study)
    with storage_errors(url):
        print(table.summary(study))
        exported = []
        if args.export_model is not None:
            from search.results import export

            model = export.export_best_model(study, args.export_model, locations.artifacts)
            print(f"\n{model.line()}")
            exported.append(model.path)
        target = args.out or locations.reports
        try:
            written = figures.write_all(study, target) + exported
            for path, text in _exports(study, args):
                disk_space.write_whole(path, lambda file, text=text: file.write_text(
                    text, encoding="utf-8"))
                written.append(path)
        except OSError as error:
            raise SearchError(_cannot_write(error, target)) from None
    return written


def _cannot_write(error: OSError, target: Path) -> str:
    where = Path(error.filename).parent if error.filename else target
    if disk_space.is_full(error):
        return f"cannot write to {where}: " + disk_space.full_line(
            where, "free some space there or pick another --out, --csv or --json",
            kept="the files written before are unchanged")
    return (f"cannot write {error.filename or target}: {error.strerror}; pick another --out, "
            "--csv or --json")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def report() -> int:
        written = write_report(args)
        print("\n" + "\n".join(f"wrote {path}" for path in written))
        return 0

    return cli.handle_signals_and_errors(report, verbose=False)


if __name__ == "__main__":
    cli.run_command(main)
