"""The shipped study definitions (``*.toml``), installed as the package ``search.studies``.

pyproject.toml maps this folder onto ``search.studies`` and ships its ``*.toml`` files as
package data; the databases, checkpoints and artifacts that runs leave beside them in a
clone are not shipped. ``search.definition.load`` reads them when ``./studies`` (or
``--studies-dir``) holds no definition of that name.
"""
