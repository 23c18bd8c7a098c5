"""The user's code, named by a ``"module:function"`` string: imported, fingerprinted, checked.

A study file names its builder and its loader as uvicorn names an app: ``"convnet:build"``,
with the study file's folder first on the import path. Each worker process imports them by
name itself (nothing is pickled). Every failure is one ``SearchError`` line naming ``where``
(the file and key, e.g. ``studies/x.toml: 'model.build'``); an error raised *inside* the
user's module is passed on as what it is, never disguised as "not found".

Cheap to import: no TensorFlow here, so a study can be checked before Keras starts.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from search.errors import SearchError

_IDENTIFIERS = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# An array's printout inside an error message (Keras prints the input it refused).
_ARRAY_DUMP = re.compile(r"\[[\d\s.,eE+\-\[\]]{20,}\]")
LONGEST_MESSAGE = 300  # characters of an exception's text kept in a one-line error
_STUDY_FOLDERS: set[Path] = set()  # folders import_attribute put on the path, this process


def describe_error(error: BaseException) -> str:
    """``Type: message`` on one line. Keras wraps a layer's error in a frame ("Exception
    encountered when calling ...", "Arguments received by ...") that only hides it: dropped."""
    lines = []
    for line in _ARRAY_DUMP.sub("[...]", _ANSI.sub("", str(error))).splitlines():
        line = line.strip()
        if line.startswith("Arguments received by"):
            break
        if line and not line.startswith("Exception encountered when calling"):
            lines.append(line)
    text = " ".join(lines)
    if len(text) > LONGEST_MESSAGE:
        text = text[:LONGEST_MESSAGE - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _put_first_on_path(folder: Path) -> None:
    entry = str(folder.resolve())
    _STUDY_FOLDERS.add(folder.resolve())
    if sys.path[:1] != [entry]:
        sys.path[:] = [entry, *(known for known in sys.path if known != entry)]


def _forget_if_elsewhere(module_name: str, folder: Path) -> None:
    """Drop a module cached from another study folder when ``folder`` has one of that name:
    two studies in one process (a notebook, the tests) may each have a ``convnet.py``. A
    library of that name already imported is never dropped: that is one line instead."""
    top = module_name.split(".")[0]
    cached = sys.modules.get(top)
    here = folder.resolve()
    if cached is None or not ((here / f"{top}.py").exists() or (here / top).is_dir()):
        return
    origin = Path(getattr(cached, "__file__", None) or here).resolve()
    if origin.is_relative_to(here):
        return
    if not any(origin.is_relative_to(other) for other in _STUDY_FOLDERS):
        raise SearchError(f"{module_name!r} is already imported from {origin}, so "
                          f"{here / top} cannot be; rename it")
    for name in [name for name in sys.modules if name == top or name.startswith(top + ".")]:
        del sys.modules[name]


def _import_module(module_name: str, spec: str, where: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # Only the named module (or a package above it) missing means "not found"; a module
        # that the user's module imports and that is missing is the user's module failing.
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise SearchError(f"{where}: no module {module_name!r} for {spec!r}; put "
                              f"{module_name.replace('.', '/')}.py beside the study file"
                              ) from None
        raise SearchError(f"{where}: importing {module_name!r} failed: "
                          f"{describe_error(error)}") from None
    except Exception as error:  # the user's module may raise anything while it loads
        raise SearchError(f"{where}: importing {module_name!r} failed: "
                          f"{describe_error(error)}") from None


def _public_names(module: Any) -> str:
    names = sorted(name for name, value in vars(module).items()
                   if not name.startswith("_") and callable(value)
                   and getattr(value, "__module__", None) == module.__name__)
    return ", ".join(names) or "nothing callable"


def import_attribute(spec: str, folder: Path | None, where: str) -> object:
    """The object ``spec`` (``"module:attribute"``, attribute may be dotted) names.

    ``folder`` (the study file's folder) goes first on ``sys.path`` and stays there, so the
    user's module can import its neighbours later too.
    """
    module_name, _, attribute = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not (_IDENTIFIERS.fullmatch(module_name) and _IDENTIFIERS.fullmatch(attribute)):
        raise SearchError(f"{where}: {spec!r} is not \"module:function\" "
                          "(for example \"convnet:build\")")
    if folder is not None:
        _put_first_on_path(folder)
        try:
            _forget_if_elsewhere(module_name, folder)
        except SearchError as error:
            raise SearchError(f"{where}: {error}") from None
    module = _import_module(module_name, spec, where)
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise SearchError(f"{where}: module {module_name!r} has no {attribute!r} "
                              f"(it defines: {_public_names(module)})") from None
    return value


def import_function(spec: str, folder: Path | None, where: str) -> Callable[..., Any]:
    """``import_attribute``, which must name something callable."""
    value = import_attribute(spec, folder, where)
    if not callable(value):
        raise SearchError(f"{where}: {spec!r} is a {type(value).__name__}, not a function")
    return value


def fingerprint_module(obj: object) -> str:
    """sha256 of the source file of the module defining ``obj``.

    A function defined in ``__main__`` or a notebook cell has no file of its own to hash:
    its own source is hashed if Python can find it, else its qualified name.
    """
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    origin = getattr(module, "__file__", None)
    if module is not None and module.__name__ != "__main__" and origin:
        try:
            return hashlib.sha256(Path(origin).read_bytes()).hexdigest()
        except OSError:
            pass
    try:
        text = inspect.getsource(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        text = f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', repr(obj))}"
    return hashlib.sha256(text.encode()).hexdigest()


def importable_name(func: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` if a fresh process could import ``func`` by that name, else
    None (defined in ``__main__``, a notebook, inside another function, or since rebound)."""
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if module_name in (None, "__main__", "__mp_main__") or "<" in qualname:
        return None
    value: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        value = getattr(value, part, None)
    return f"{module_name}:{qualname}" if value is func else None


def check_builder_arguments(builder: Callable[..., Any], grid_keys: Iterable[str],
                            fixed_keys: Iterable[str], where: str) -> None:
    """The builder takes every grid key but ``batch_size`` (the service's) and every fixed
    key by keyword, and every parameter it requires gets a value."""
    grid = [key for key in grid_keys if key != "batch_size"]
    fixed = list(fixed_keys)
    name = getattr(builder, "__qualname__", repr(builder))
    both = sorted(set(grid) & set(fixed))
    if both:
        raise SearchError(f"{where}: {', '.join(map(repr, both))} is both a grid key and a "
                          "fixed builder argument; give it one place")
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check against
        return
    by_keyword = [parameter.name for parameter in parameters if parameter.kind in
                  (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]
    takes_any = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)
    unknown = [key for key in grid + fixed if key not in by_keyword]
    if unknown and not takes_any:
        raise SearchError(f"{where}: {name} takes no argument "
                          f"{', '.join(map(repr, unknown))}; it takes: "
                          f"{', '.join(by_keyword) or 'no keyword arguments'}")
    missing = [parameter.name for parameter in parameters
               if parameter.default is parameter.empty and parameter.name not in grid + fixed
               and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    if missing:
        raise SearchError(f"{where}: {name} needs a value for "
                          f"{', '.join(map(repr, missing))}; put it in [search_space] or "
                          "[model]")
