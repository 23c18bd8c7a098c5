"""A sampled study's search stage, drawn by Optuna's own plots: the optimization history, a
slice per parameter and the parameters' importances, each over the search trials alone.

``search.results.figures.write_all`` calls ``write_search`` for a sampled study; the best
confirmed configuration's curves are ``figures.plot_replicate_curves``'s, as a grid's best
point's are. ``python -m search.report --study NAME`` writes them all.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import optuna.visualization.matplotlib  # noqa: E402

from search.results import plotting, search_stage, wording  # noqa: E402
from search.study import points  # noqa: E402

logger = logging.getLogger(__name__)

HISTORY, SLICE, IMPORTANCES = "search_history.png", "search_slice.png", "search_importances.png"


def _drawn(draw: Callable[[], Any], path: Path, title: str) -> Path | None:
    """Save what ``draw`` (an Optuna plot) returns under ``title``; None when Optuna cannot
    draw it yet (importances of too few or all-equal configurations)."""
    # Optuna's plots switch matplotlib to its ggplot style for good; the context keeps that
    # to their own figures, so the report's other figures look as they always did.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            axes = draw()
        except (ValueError, RuntimeError) as error:
            logger.info("%s not drawn: %s", path.name, error)
            return None
        # One Axes, or an array of them (a slice per parameter): all share one figure.
        figure = np.asarray(axes).flat[0].get_figure()
        figure.suptitle(title)
        return plotting.save(figure, path)


def write_search(study: optuna.Study, statuses: list[points.UnitStatus],
                 out_dir: Path) -> list[Path]:
    """Write the search stage's figures into ``out_dir``; none before a search trial is
    complete, and no importances before two are."""
    search = search_stage.search_study(study, statuses)
    count = len(search.trials)
    if count == 0:
        return []
    metric = points.objective_of(study)[0]
    title = (f"{study.study_name}: the search stage's {count} complete trial(s), one run "
             "each (the confirm stage's re-runs are not shown)")
    target = wording.label(metric)
    plots = optuna.visualization.matplotlib
    figures = [(HISTORY, lambda: plots.plot_optimization_history(search, target_name=target)),
               (SLICE, lambda: plots.plot_slice(search, target_name=target))]
    if count >= 2:  # one trial has no importance to measure
        figures.append((IMPORTANCES, lambda: plots.plot_param_importances(search,
                                                                           target_name=target)))
    written = (_drawn(draw, out_dir / name, title) for name, draw in figures)
    return [path for path in written if path is not None]
