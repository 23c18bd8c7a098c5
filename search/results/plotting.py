"""What the report's figures share: a backend that writes files, how a figure is saved, and
how a mean and its standard deviation read on it.

``search.results.figures`` (curves, and ``write_all``) and ``search.results.grid_figure``
(the grid) draw with these.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from search import disk_space

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402


def save(figure: plt.Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` whole (a full disk leaves the previous file), close it;
    return ``path``."""
    # The report's figures use constrained layout, which keeps their outside legends in view.
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    try:
        disk_space.write_whole(path, lambda temporary: figure.savefig(temporary, dpi=110))
    finally:
        plt.close(figure)
    return path


def mean_and_std(mean: float, std: float | None, between: str = " ") -> str:
    """``0.9751 ± 0.0012``; one replicate has no spread, so its std reads ``-``."""
    return f"{mean:.4f}{between}± {'-' if std is None else f'{std:.4f}'}"
