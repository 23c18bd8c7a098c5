"""What a process trains with: the study's data and builder, loaded once per process and, in
the process that starts a run, checked against each other.

``prepare`` is the one place a process loads them: the process that starts a run (before
anything is stored), and each worker it starts early, while that process checks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search import data as mnist
from search import datasets
from search.options import RunOptions
from search.worker import process

if TYPE_CHECKING:
    from search.training.builders import Builder

# The built-in MLP's path is its own (search.training.compiled), chosen without building it.
MLP_PATHS = {"mlp": {"path": "compiled", "layers": "the built-in MLP",
                     "why": "its own whole-epoch XLA loop"}}


@dataclasses.dataclass
class Prepared:
    """The data (loaded once) and the builder; with a check, what the study records."""

    dataset: Any
    builder: Builder | None = None  # None: the built-in MLP
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    paths: dict[str, dict[str, str]] = dataclasses.field(default_factory=lambda: MLP_PATHS)


def prepare(options: RunOptions, build: Builder | None = None,
            data: Mapping[str, Any] | None = None, check: bool = True) -> Prepared:
    """The study's data and builder. With ``check`` (the process that starts a run), a
    [model] study's builder and data are checked against each other and fingerprinted, and
    each architecture's path is chosen."""
    definition = options.definition
    if definition.model is None:
        if not (options.data_dir or os.environ.get(mnist.DATA_DIR_VARIABLE)):
            process.configure_threads(options.threads)  # keras.datasets.mnist loads it
        loaded = datasets.load(definition, options.data_dir)
        process.startup_moment("data loaded")
        return Prepared(loaded)
    # Before the user's modules import Keras: quietly, and with the run's threads.
    process.configure_threads(options.threads)
    from search.training import builders

    dataset = datasets.load(definition, options.data_dir, data)
    builder = builders.builder_of(definition, build)
    process.startup_moment("data loaded")
    if not check:
        return Prepared(dataset, builder)
    checked = builders.check(definition, builder, dataset)
    prepared = Prepared(dataset, builder, {"model": builders.fingerprint(definition, builder),
                                           "data": datasets.fingerprint(dataset)},
                        builders.paths(definition, builder, checked))
    process.startup_moment("builder checked and paths chosen")
    return prepared
