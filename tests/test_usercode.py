"""The user's code by import string: one line per kind of problem, fingerprints, names.

Run: ``pytest tests/test_usercode.py`` (no TensorFlow; milliseconds).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from search import usercode
from search.errors import SearchError

WHERE = "studies/x.toml: 'model.build'"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A study folder with user modules; sys.path and sys.modules restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    known = set(sys.modules)
    files = {
        "shapes17.py": """
            def build(learning_rate, dropout=0.5, filters=32):
                return ("built", learning_rate, dropout, filters)

            class Factory:
                @staticmethod
                def make():
                    return "made"

            NOT_CALLABLE = 3
            """,
        "needs_missing17.py": "import no_such_dependency_17\n",
        "raises17.py": "raise RuntimeError('cannot find the GPU\\nsecond line')\n",
        "broken17.py": "def build(:\n",
        "pkg17/__init__.py": "",
        "pkg17/models.py": "def build(units):\n    return units\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    yield tmp_path
    for name in set(sys.modules) - known:  # the user modules imported from tmp_path
        if name.split(".")[0].endswith("17"):
            del sys.modules[name]


def test_imports_a_function_from_the_study_folder(folder: Path) -> None:
    build = usercode.import_attribute("shapes17:build", folder, WHERE)
    assert build(0.1) == ("built", 0.1, 0.5, 32)
    assert sys.path[0] == str(folder.resolve())
    assert usercode.import_attribute("shapes17:Factory.make", folder, WHERE)() == "made"
    assert usercode.import_function("pkg17.models:build", folder, WHERE)(3) == 3


@pytest.mark.parametrize(("spec", "message"), [
    ("shapes17.build", r"'shapes17.build' is not \"module:function\" \(for example "
                       r"\"convnet:build\"\)"),
    ("shapes17:", r"'shapes17:' is not \"module:function\""),
    (":build", r"':build' is not \"module:function\""),
    ("a:b:c", r"'a:b:c' is not \"module:function\""),
    ("no_such_module17:build", r"no module 'no_such_module17' for 'no_such_module17:build'; "
                               r"put no_such_module17.py beside the study file"),
    ("no_pkg17.models:build", r"no module 'no_pkg17.models'"),
    ("pkg17.nothing:build", r"no module 'pkg17.nothing'"),
    ("shapes17:biuld", r"module 'shapes17' has no 'biuld' \(it defines: Factory, build\)"),
    ("needs_missing17:build", r"importing 'needs_missing17' failed: ModuleNotFoundError: "
                              r"No module named 'no_such_dependency_17'"),
    ("raises17:build", r"importing 'raises17' failed: RuntimeError: cannot find the GPU "
                       r"second line"),
    ("broken17:build", r"importing 'broken17' failed: SyntaxError: "),
])
def test_each_problem_is_its_own_line(folder: Path, spec: str, message: str) -> None:
    with pytest.raises(SearchError, match=f"^{WHERE}: {message}") as caught:
        usercode.import_attribute(spec, folder, WHERE)
    assert "\n" not in str(caught.value)


def test_import_function_refuses_what_cannot_be_called(folder: Path) -> None:
    with pytest.raises(SearchError, match=r"'shapes17:NOT_CALLABLE' is a int, not a function"):
        usercode.import_function("shapes17:NOT_CALLABLE", folder, WHERE)


def test_a_module_of_the_same_name_in_another_folder_is_not_reused(
        folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert usercode.import_attribute("pkg17.models:build", folder, WHERE)(2) == 2
    other = tmp_path_factory.mktemp("other")
    (other / "pkg17").mkdir()
    (other / "pkg17" / "__init__.py").write_text("")
    (other / "pkg17" / "models.py").write_text("def build(units):\n    return -units\n")
    assert usercode.import_attribute("pkg17.models:build", other, WHERE)(2) == -2


def test_a_library_of_the_same_name_is_not_replaced(folder: Path) -> None:
    (folder / "json.py").write_text("def build():\n    pass\n")
    with pytest.raises(SearchError, match=rf"^{WHERE}: 'json' is already imported from "
                                          r".*json.*, so .*json cannot be; rename it$"):
        usercode.import_attribute("json:build", folder, WHERE)
    assert sys.modules["json"].dumps([1]) == "[1]"


def test_fingerprint_follows_the_module_file(folder: Path) -> None:
    build = usercode.import_attribute("shapes17:build", folder, WHERE)
    before = usercode.fingerprint_module(build)
    assert before == usercode.fingerprint_module(build) and len(before) == 64
    with open(folder / "shapes17.py", "a") as file:
        file.write("# edited\n")
    assert usercode.fingerprint_module(build) != before


def test_fingerprint_of_a_function_without_a_module_file() -> None:
    def local(units):
        return units

    assert usercode.fingerprint_module(local) == usercode.fingerprint_module(local)
    namespace: dict = {"__name__": "__main__"}
    exec("def cell(units):\n    return units\n", namespace)  # a notebook cell's function
    assert len(usercode.fingerprint_module(namespace["cell"])) == 64


def test_importable_name(folder: Path) -> None:
    build = usercode.import_attribute("shapes17:build", folder, WHERE)
    assert usercode.importable_name(build) == "shapes17:build"
    make = usercode.import_attribute("shapes17:Factory.make", folder, WHERE)
    assert usercode.importable_name(make) == "shapes17:Factory.make"
    assert usercode.importable_name(usercode.describe_error) == "search.usercode:describe_error"

    def local():
        pass

    assert usercode.importable_name(local) is None
    assert usercode.importable_name(lambda: None) is None
    namespace: dict = {"__name__": "__main__"}
    exec("def cell():\n    pass\n", namespace)
    assert usercode.importable_name(namespace["cell"]) is None


def test_an_importable_name_imports_in_a_fresh_process(folder: Path) -> None:
    build = usercode.import_attribute("shapes17:build", folder, WHERE)
    name = usercode.importable_name(build)
    code = ("import sys; from pathlib import Path; from search.usercode import import_function;"
            f"print(import_function({name!r}, Path(sys.argv[1]), 'w')(1.0))")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                            text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "('built', 1.0, 0.5, 32)"


def build_example(learning_rate, dropout=0.5, *, filters=32):
    return learning_rate, dropout, filters


def build_positional(units, /, learning_rate=0.1):
    return units


def build_anything(learning_rate, **settings):
    return settings


@pytest.mark.parametrize(("builder", "grid", "fixed", "message"), [
    (build_example, ["learning_rate", "batch_size", "dropout"], ["filters"], None),
    (build_example, ["learning_rate"], [], None),
    (build_anything, ["learning_rate", "width"], ["depth"], None),
    (build_example, ["learning_rate", "filtres"], [],
     r"build_example takes no argument 'filtres'; it takes: learning_rate, dropout, filters$"),
    (build_example, ["learning_rate", "units"], ["depth"],
     r"build_example takes no argument 'units', 'depth'; it takes: "),
    (build_example, ["dropout", "batch_size"], [],
     r"build_example needs a value for 'learning_rate'; put it in \[search_space\] or "
     r"\[model\]$"),
    (build_anything, ["batch_size"], ["depth"], r"build_anything needs a value for "
                                                r"'learning_rate'"),
    (build_positional, ["units", "learning_rate"], [], r"takes no argument 'units'; it takes: "
                                                       r"learning_rate$"),
    (build_example, ["learning_rate", "dropout"], ["dropout"],
     r"'dropout' is both a grid key and a fixed builder argument"),
])
def test_builder_arguments(builder, grid, fixed, message) -> None:
    if message is None:
        usercode.check_builder_arguments(builder, grid, fixed, WHERE)
        return
    with pytest.raises(SearchError, match=f"^{WHERE}: .*{message}"):
        usercode.check_builder_arguments(builder, grid, fixed, WHERE)


def test_describe_error_keeps_what_keras_wraps() -> None:
    error = ValueError("Exception encountered when calling Sequential.call().\n\n"
                       "\x1b[1mInput 0 is incompatible: expected (None, 8)\x1b[0m\n\n"
                       "Arguments received by Sequential.call():\n  • inputs=tf.Tensor")
    assert usercode.describe_error(error) == ("ValueError: Input 0 is incompatible: "
                                              "expected (None, 8)")
    assert usercode.describe_error(KeyError()) == "KeyError"
    assert len(usercode.describe_error(ValueError("x" * 1000))) < 320
