"""Exact, resumable grid search for Keras models on Optuna.

From the command line: ``python -m search.run --study mnist`` (see README.md). From Python:

    import search
    result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    print(search.summary(result.study))
    search.write_figures(result.study, "reports/mnist-quick")
"""

from search.api import StudyResult, run_study
from search.definition import StudyDefinition, load
from search.errors import SearchError
from search.options import RunOptions
from search.results.export import ExportedModel, export_best_model
from search.results.figures import write_all as write_figures
from search.results.table import point_rows, summary, to_json, verdict_of
from search.study.storage import load_for_reading as load_study
from search.worker.loop import Interrupted

__all__ = [
    "ExportedModel", "Interrupted", "RunOptions", "SearchError", "StudyDefinition",
    "StudyResult", "export_best_model", "load", "load_study", "point_rows", "run_study",
    "summary", "to_json", "verdict_of", "write_figures",
]
