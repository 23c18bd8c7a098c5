"""What a checkpoint costs per epoch for the shipped MLP: time and bytes, through the real
``CheckpointStore``, in the artifact store named on the command line (a folder, or
s3://bucket/prefix with the AWS variables set: see README's "Across machines")::

    python scripts/bench_checkpoint.py /tmp/bench.artifacts
    python scripts/bench_checkpoint.py s3://my-bucket/bench
"""

from __future__ import annotations

import argparse
import statistics
import time

from search import definition
from search.study import artifact_store, store_checkpoints
from search.training.checkpoints import CheckpointStore
from search.training.model import build_model
from search.worker.paths import CompiledPath


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("location", help="a folder or s3://bucket/prefix")
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args()
    study = definition.load("mnist")
    model = build_model(**study.model_arguments(study.grid[0]))
    state = CompiledPath.state(model)  # what the MLP's trials keep
    store = CheckpointStore(args.location, "bench", artifact_store.check(args.location))
    key, history = {"bench": True}, {"val_accuracy": []}
    seconds = []
    for epoch in range(1, args.saves + 1):
        history["val_accuracy"].append(0.5)
        started = time.perf_counter()
        store.save("unit", state, key, epoch, history, [1.0] * epoch)
        seconds.append(time.perf_counter() - started)
    found = store_checkpoints.load_checkpoint(store.store, "bench", "unit")
    started = time.perf_counter()
    store.load("unit", key, state)
    load_seconds = time.perf_counter() - started
    store.discard_all()
    state_bytes = found[1] if found else b""
    print(f"{args.location}: first save {seconds[0] * 1e3:.1f} ms; each later epoch "
          f"{len(state_bytes) / 1e6:.2f} MB of state, median "
          f"{statistics.median(seconds[1:]) * 1e3:.1f} ms (min {min(seconds[1:]) * 1e3:.1f}, "
          f"max {max(seconds[1:]) * 1e3:.1f}); a load {load_seconds * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
