"""``pip install .`` anywhere: the wheel, installed into a fresh venv, runs the quick study, the
report and the dashboard from an empty folder, finds the shipped definitions inside the
package and writes nothing into site-packages.

The fresh venv gets the wheel alone (``pip install --no-deps``); the heavy dependencies
(TensorFlow, Keras, Optuna, ...) come from this project's venv, whose site-packages a .pth
file appends to the new venv's path, so nothing is downloaded twice. A path line in a .pth
file is only appended, not processed as a site folder, so the project's editable install
(its own .pth file and import finder) stays out: the tests check that ``search`` and its
definitions are imported from the new venv.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _copy_source(target: Path) -> Path:
    """What ``pip install .`` reads, without the databases and caches beside it, plus a
    planted database and artifact folder that must not be shipped. Built here, the wheel's
    build/ and *.egg-info folders stay out of the working tree."""
    shutil.copy2(REPO / "pyproject.toml", target / "pyproject.toml")
    shutil.copy2(REPO / "README.md", target / "README.md")
    shutil.copytree(REPO / "search", target / "search",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (target / "studies").mkdir()
    for path in [*(REPO / "studies").glob("*.py"), *(REPO / "studies").glob("*.toml")]:
        shutil.copy2(path, target / "studies" / path.name)
    (target / "studies" / "planted.db").write_bytes(b"SQLite format 3\x00")
    (target / "studies" / "planted.artifacts").mkdir()
    (target / "studies" / "planted.artifacts" / "trial.png").write_bytes(b"png")
    return target


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def _environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "OPTUNA_STORAGE")}
    environment["PYTHONDONTWRITEBYTECODE"] = "1"  # pip compiled what it installed
    return environment


def _run(python: Path, *arguments: str, cwd: Path,
         timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(python), *arguments], cwd=cwd, env=_environment(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{arguments}: exit {result.returncode}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel built from a copy of the source, installed into a fresh venv."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    _copy_source(source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(root / "dist"), str(source)], check=True, timeout=300)
    wheel = next((root / "dist").glob("keras_optuna_search-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                     cwd=root).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "project_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return {"wheel": wheel, "python": python, "site": site, "files": _files(site)}


def test_the_wheel_ships_the_definitions_and_nothing_beside_them(installed: dict) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = sorted(name for name in names if name.startswith("search/studies/"))
    assert shipped == ["search/studies/__init__.py", "search/studies/convnet.py",
                       "search/studies/mnist-convnet.toml", "search/studies/mnist-smoke.toml",
                       "search/studies/mnist-width-dropout.toml", "search/studies/mnist.toml",
                       "search/studies/regression-tpe.toml", "search/studies/regression.py",
                       "search/studies/regression.toml"]
    assert not [name for name in names if "planted" in name or name.startswith("studies/")]


def test_the_new_venv_imports_the_wheel_not_the_working_tree(installed: dict,
                                                              tmp_path: Path) -> None:
    probe = ("import json, sys, importlib.resources as r, search, search.studies, "
             "search.definition as d; print(json.dumps({'search': search.__file__, "
             "'mnist': str(r.files('search.studies') / 'mnist.toml'), 'finders': "
             "[type(f).__module__ for f in sys.meta_path], 'known': d.known()}))")
    found = json.loads(_run(installed["python"], "-c", probe, cwd=tmp_path).stdout)
    site = str(installed["site"])
    assert found["search"].startswith(site) and found["mnist"].startswith(site)
    assert not any("editable" in finder for finder in found["finders"])
    assert found["known"] == [[], ["mnist", "mnist-convnet", "mnist-smoke",
                                   "mnist-width-dropout", "regression", "regression-tpe"]]


def _first_line(process: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the dashboard printed no URL"
    return process.stdout.readline()


def _check_dashboard(python: Path, work: Path, exported_trial: int) -> None:
    """It starts, serves its page, and serves the exported trial's model file."""
    import optuna

    from search.study.optuna_internals import trial_id

    process = subprocess.Popen([str(python), "-m", "search.dashboard", "--study", "mnist-quick",
                                "--port", "0"], cwd=work, env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(process)
        url = re.search(r"http://\S+", line)[0]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        study = optuna.load_study(study_name="mnist-quick",
                                  storage=f"sqlite:///{work}/studies/mnist-quick.db")
        trial = study.get_trials()[exported_trial]
        base = url.split("/dashboard/")[0]
        study_number = url.rsplit("/", 1)[1]
        model_url = (f"{base}/artifacts/{study_number}/{trial_id(trial)}/"
                     f"{trial.user_attrs['model_artifact']}")
        with urllib.request.urlopen(model_url, timeout=30) as response:
            assert response.read() == (work / "best.keras").read_bytes()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_quick_study_report_and_dashboard_from_an_empty_folder(
        installed: dict, tmp_path: Path, mnist_dir: Path) -> None:
    python, work = installed["python"], tmp_path / "empty"
    work.mkdir()
    run = _run(python, "-m", "search.run", "--study", "mnist", "--quick", "--data-dir",
               str(mnist_dir), "--workers", "1", cwd=work, timeout=240)
    assert "27 of 27 trials" in run.stdout
    report = _run(python, "-m", "search.report", "--study", "mnist-quick", "--export-model",
                  "best.keras", cwd=work)
    exported = re.search(r"^exported trial (\d+) ", report.stdout, re.MULTILINE)
    assert exported, report.stdout
    _check_dashboard(python, work, int(exported[1]))

    assert (work / "studies" / "mnist-quick.db").is_file()
    assert any((work / "studies" / "mnist-quick.artifacts").iterdir())
    assert sorted(p.name for p in (work / "reports" / "mnist-quick").glob("*.png"))
    assert (work / "best.keras").stat().st_size > 0
    assert _files(installed["site"]) == installed["files"]  # site-packages untouched
