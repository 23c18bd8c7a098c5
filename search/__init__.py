"""Exact, resumable grid search for Keras models on Optuna.

From the command line: ``python -m search.run --study mnist`` (see README.md). From Python:

    import search
    result = search.run_study("mnist", quick=True, data_dir="../shared/mnist")
    print(search.summary(result.study))
    search.write_figures(result.study, "reports/mnist-quick")
"""

import importlib
from typing import Any

# Each public name and the module that holds it. They load on first use, so that a command
# (or a worker process) imports only what it needs: SciPy and matplotlib alone take a second.
_PUBLIC = {
    "ExportedModel": "search.results.export",
    "Interrupted": "search.errors",
    "RunOptions": "search.options",
    "SearchError": "search.errors",
    "StudyDefinition": "search.definition",
    "StudyResult": "search.result",
    "export_best_model": "search.results.export",
    "load": "search.definition",
    "load_study": "search.study.storage:load_for_reading",
    "point_rows": "search.results.table",
    "run_study": "search.running",
    "summary": "search.results.table",
    "to_json": "search.results.table",
    "verdict_of": "search.results.table",
    "write_figures": "search.results.figures:write_all",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    module, _, attribute = _PUBLIC[name].partition(":")
    return getattr(importlib.import_module(module), attribute or name)
