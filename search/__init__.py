"""Exact, resumable grid search for Keras models on Optuna.

Run a study with ``python -m search.run --study mnist``; see README.md.
"""

from search.definition import StudyDefinition, load
from search.errors import SearchError

__all__ = ["SearchError", "StudyDefinition", "load"]
