"""What each knob of the MLP costs per epoch on the fast path, against the seed's model.

    python scripts/bench_knobs.py                 # 54,000 training images, one thread
    python scripts/bench_knobs.py --rounds 1 --train-size 5000   # a quick check

Every variant is compiled first; then each round times one epoch of every variant in turn
(interleaved, so a busy moment of the shared machine does not fall on one variant alone),
and the table shows each variant's median epoch.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from scripts import bench_parts  # noqa: E402
from search import cli, data  # noqa: E402
from search.knobs import SEED_MODEL  # noqa: E402
from search.worker import process  # noqa: E402

VARIANTS = {
    "128-64, relu, dropout 0, adam (the seed's model)": {},
    "hidden_units 256-128": {"hidden_units": [256, 128]},
    "hidden_units 512": {"hidden_units": [512]},
    "dropout 0.3": {"dropout": 0.3},
    "activation gelu": {"activation": "gelu"},
    "activation tanh": {"activation": "tanh"},
    "optimizer sgd": {"optimizer": "sgd"},
    "optimizer rmsprop": {"optimizer": "rmsprop"},
}
BATCH_SIZES = (32, 128)


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser("python scripts/bench_knobs.py", __doc__)
    parser.add_argument("--rounds", type=int, default=3, metavar="N",
                        help="timed epochs per variant (default 3; the median is shown)")
    parser.add_argument("--train-size", type=int, metavar="N",
                        help="only N training images (default: all 54,000)")
    parser.add_argument("--data-dir", metavar="DIR", help="MNIST IDX folder ($MNIST_DATA)")
    args = parser.parse_args(argv)
    cli.setup_logging(verbose=False)
    process.configure_threads(1)  # as one worker trains
    import keras

    from search.training.compiled import CompiledTraining
    from search.training.model import build_model

    dataset = data.split(data.load_raw(args.data_dir), 6000, 0, args.train_size)
    print(f"machine: {bench_parts.machine()}; {len(dataset.train_images)} training images, "
          "one thread", flush=True)
    seconds: dict[tuple[str, int], list[float]] = {}
    with CompiledTraining() as compiled:
        models = {}
        for name, change in VARIANTS.items():
            for batch_size in BATCH_SIZES:
                keras.utils.set_random_seed(0)
                model = build_model(learning_rate=0.001, **{**SEED_MODEL, **change})
                compiled.fit(model, dataset, batch_size=batch_size, epochs=1, seed=0)
                models[name, batch_size] = model
        for round_number in range(args.rounds):
            for (name, batch_size), model in models.items():
                started = time.perf_counter()
                compiled.fit(model, dataset, batch_size=batch_size, epochs=round_number + 2,
                             seed=0, initial_epoch=round_number + 1)
                seconds.setdefault((name, batch_size), []).append(
                    time.perf_counter() - started)
    print("\n| model | batch 32 (s) | vs the seed's | batch 128 (s) | vs the seed's |")
    print("|---|---:|---:|---:|---:|")
    seed_name = next(iter(VARIANTS))
    for name in VARIANTS:
        cells = []
        for batch_size in BATCH_SIZES:
            epoch = statistics.median(seconds[name, batch_size])
            seed = statistics.median(seconds[seed_name, batch_size])
            cells += [f"{epoch:.2f}", f"{epoch / seed:.2f}x"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
