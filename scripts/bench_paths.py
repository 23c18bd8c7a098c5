"""What an epoch costs on each training path, for the models the path rule must tell apart.

    python scripts/bench_paths.py                  # the README's table (one CPU thread)
    python scripts/bench_paths.py --threads 2 --models convnet

Each model trains on MNIST (12,000 training and 6,000 validation images; the regression on
its own 3,000 + 1,000 rows) for ``--epochs`` epochs on each path of
``search.training.user_model`` (``fit``, ``graph``, ``xla``) through the service's own
``train``; the first epoch's time includes tracing or compiling, the others are the steady
cost. Also printed: the path ``search.training.path_choice`` picks for each model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "studies"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts.bench_parts import machine  # noqa: E402
from search import cli, data  # noqa: E402
from search.userdata import UserData  # noqa: E402
from search.worker import process  # noqa: E402

MODELS = ("mlp", "mlp-dropout", "convnet", "regression")


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser("python scripts/bench_paths.py", __doc__)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--paths", nargs="+", default=["fit", "graph", "xla"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per path (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow's threads, as one worker has (default 1)")
    parser.add_argument("--data-dir", metavar="DIR", help="the MNIST IDX folder")
    return parser


def model_and_data(name: str, data_dir: str | None) -> tuple[object, UserData, int]:
    """A fresh model, its data and its batch size."""
    if name == "regression":
        import regression

        arrays = regression.load()
        x, y = arrays["x_train"], arrays["y_train"]
        return regression.build(0.003, units=64), UserData(x[:3000], y[:3000], x[3000:],
                                                          y[3000:]), 32
    x, y, _, _ = data.load_raw(data_dir)
    x, y = data.scale(x[:18000]), y[:18000].astype("int32")
    arrays = UserData(x[:12000], y[:12000], x[12000:], y[12000:])
    if name == "convnet":
        import convnet

        return convnet.build(0.001), arrays, 128
    from search.training.model import build_model

    dropout = 0.2 if name == "mlp-dropout" else 0.0
    return build_model([128, 64], 0.001, dropout=dropout), arrays, 32


class _Timer:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def set_model(self, model: object) -> None:
        pass

    def on_epoch_begin(self, epoch: int) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    process.configure_threads(args.threads)
    import keras

    from search.training import path_choice, user_model

    print(f"machine: {machine()}; {args.threads} TensorFlow thread(s)")
    print("| model | rule picks | path | first epoch | later epochs (median) |\n"
          "|---|---|---|---:|---:|", flush=True)
    for name in args.models:
        for path in args.paths:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model, arrays, batch_size = model_and_data(name, args.data_dir)
            picked = path_choice.choose(model).path
            timer = _Timer()
            user_model.train(model, arrays, batch_size=batch_size, epochs=args.epochs, seed=0,
                             callbacks=[timer], path=path)
            later = statistics.median(timer.seconds[1:]) if len(timer.seconds) > 1 else 0.0
            print(f"| {name} (batch {batch_size}) | {picked} | {path} | "
                  f"{timer.seconds[0]:.3f} s | {later:.3f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
