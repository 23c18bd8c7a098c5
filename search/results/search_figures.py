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
import matplotlib.figure  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import optuna.visualization.matplotlib  # noqa: E402

from search.results import plotting, search_stage, wording  # noqa: E402
from search.study import points  # noqa: E402

logger = logging.getLogger(__name__)

HISTORY, SLICE, IMPORTANCES = "search_history.png", "search_slice.png", "search_importances.png"


def _readable_log_axes(figure: matplotlib.figure.Figure) -> None:
    """Label a log axis at 1, 2 and 5 times each power of ten, as plain numbers: Optuna's
    labels of its minor ticks (2x10^-3, 3x10^-3, ...) overlap on a narrow slice panel."""
    for axis in figure.axes:
        if axis.get_xscale() == "log":
            axis.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.xaxis.set_major_formatter(
                matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _drawn(plot: Callable[..., Any], study: optuna.Study, target: str, path: Path,
           title: str) -> Path | None:
    """Save Optuna's ``plot`` of ``study`` under ``title``; None when Optuna cannot draw it
    yet (the importances of configurations that do not vary)."""
    # Optuna's plots switch matplotlib to its ggplot style for good; the context keeps that
    # to their own figures, so the report's other figures look as they always did.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # One search trial gives each slice panel a single x, which matplotlib widens itself.
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        try:
            axes = plot(study, target_name=target)
        except (ValueError, RuntimeError) as error:
            logger.info("%s not drawn: %s", path.name, error)
            return None
        # One Axes, or an array of them (a slice per parameter): all share one figure.
        figure = np.asarray(axes).flat[0].get_figure()
        figure.suptitle(title)
        _readable_log_axes(figure)
        # The slice's colour bar takes room from its panels, which tight_layout (the save's
        # default) cannot arrange; constrained layout can.
        figure.set_layout_engine("constrained")
        return plotting.save(figure, path)


def write_search(study: optuna.Study, statuses: list[points.UnitStatus],
                 out_dir: Path) -> list[Path]:
    """Write the search stage's figures into ``out_dir``; none before a search trial is
    complete, and no importances before two are."""
    search = search_stage.search_study(study, statuses)
    count = len(search.trials)
    if count == 0:
        return []
    title = (f"{study.study_name}: the search stage's {count} complete trial(s), one run each"
             "\n(the confirm stage's re-runs on fresh seeds are not shown)")
    target = wording.label(points.objective_of(study)[0])
    plots = optuna.visualization.matplotlib
    drawings = {HISTORY: plots.plot_optimization_history, SLICE: plots.plot_slice}
    if count >= 2:  # one trial has no importance to measure
        drawings[IMPORTANCES] = plots.plot_param_importances
    written = (_drawn(plot, search, target, out_dir / name, title)
               for name, plot in drawings.items())
    return [path for path in written if path is not None]
