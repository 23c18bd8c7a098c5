"""Which path trains a model, by a rule on its layers: once per study per architecture.

Measured on this project's CPUs (README, "Training paths"): a whole epoch in one graph call
is never slower than ``model.fit`` (1.4-10x faster); XLA is 2-4x faster again for dense
networks, but its CPU convolutions are 10-35x slower than TensorFlow's, its random numbers
make a Dropout MLP's epoch 6.6x slower (and differ from TensorFlow's), and it cannot
compile some layers at all (image transforms). So:

- a model compiled with ``run_eagerly=True``, one with its own ``train_step`` or
  ``test_step`` (``fit`` reports the logs they return), or whose optimizer keeps an average
  of the weights (``use_ema``, which ``fit`` swaps in at its end) trains with ``model.fit``
  ("fit");
- a Sequential or functional model built only of Keras layers XLA runs well (dense,
  normalization, activation, reshaping, merging, embedding) and without random layers
  trains with XLA ("xla");
- any other model (convolutions, random layers, recurrent or custom layers, a subclassed
  model) trains as a graph without XLA ("graph").

The built-in MLP keeps its own compiled path (``search.training.compiled``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

import keras

from search.training.user_model import seed_states

XLA_LAYERS = frozenset({
    "InputLayer", "Dense", "EinsumDense", "Embedding", "Activation", "ReLU", "LeakyReLU",
    "ELU", "PReLU", "Softmax", "BatchNormalization", "LayerNormalization",
    "UnitNormalization", "Rescaling", "Flatten", "Reshape", "Permute", "RepeatVector",
    "Identity", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Dot", "Sequential", "Functional",  # nested models: their layers count
})
_MODELS = frozenset({"Sequential", "Functional"})


@dataclasses.dataclass(frozen=True)
class Choice:
    path: str  # "fit", "graph" or "xla"
    why: str


def _is_keras(kind: type) -> bool:
    return kind.__module__.startswith("keras.")


def layers_of(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of ``model``: a nested model, then its layers."""
    found = []
    for layer in getattr(model, "layers", []):
        found += [layer, *layers_of(layer)] if isinstance(layer, keras.Model) else [layer]
    return found


def summary(model: keras.Model) -> str:
    """The model's layer kinds in order of first use, with counts: "Conv2D x2, Dense"."""
    counts = Counter(type(layer).__name__ for layer in layers_of(model)
                     if type(layer).__name__ != "InputLayer")
    return ", ".join(name if count == 1 else f"{name} x{count}"
                     for name, count in counts.items())


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def architecture(model: keras.Model) -> str:
    """A short key for all the rule reads of a model: its class, its layers' classes in
    order (and which draw random numbers), ``run_eagerly``."""
    described = [_name(type(model)), bool(model.run_eagerly),
                 [[_name(type(layer)), bool(seed_states(layer))] for layer in layers_of(model)]]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:12]


def choose(model: keras.Model) -> Choice:
    """The path for ``model`` and why, in words for the log."""
    if model.run_eagerly:
        return Choice("fit", "the model was compiled with run_eagerly=True")
    own = [name for name in ("train_step", "test_step")
           if getattr(type(model), name) is not getattr(keras.Model, name)]
    if own:
        return Choice("fit", f"the model defines its own {' and '.join(own)}, whose logs "
                             "model.fit reports")
    if getattr(model.optimizer, "use_ema", False):
        return Choice("fit", "its optimizer keeps an average of the weights (use_ema), "
                             "which model.fit swaps in")
    kind = type(model)
    if kind.__name__ not in _MODELS or not _is_keras(kind):
        return Choice("graph", f"a subclassed model ({kind.__name__}): XLA may not "
                               "compile its call")
    layers = layers_of(model)
    random = sorted({type(layer).__name__ for layer in layers if seed_states(layer)})
    others = sorted({type(layer).__name__ for layer in layers
                     if type(layer).__name__ not in XLA_LAYERS.union(random)
                     or not _is_keras(type(layer)) and type(layer).__name__ not in random})
    reasons = [f"{', '.join(random)}: random numbers, which XLA on a CPU draws far more "
               "slowly"] if random else []
    if others:
        reasons.append(f"{', '.join(others)}: not among the layers XLA runs fast on a CPU "
                       "(its convolutions are 10-35x slower)")
    if reasons:
        return Choice("graph", "; ".join(reasons))
    return Choice("xla", "dense, normalization and reshaping layers only: one XLA call "
                         "per epoch")
