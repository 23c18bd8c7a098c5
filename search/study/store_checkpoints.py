"""A trial's checkpoints in the artifact store, readable from any machine, never half-written.

The protocol, for one unit (a grid point and replicate) of one study:

1. ``put_checkpoint`` writes the state under a fresh id,
   ``checkpoints/<study>/<unit>/epoch-<k>-<uuid>.npz``. Nothing points at it yet, so a
   writer killed here leaves an orphan that no reader ever opens.
2. ``commit_checkpoint`` records it: it writes the pointer ``checkpoints/<study>/<unit>/
   latest.json`` (the id, epoch, size and SHA-256 of the state, and the caller's small
   ``extra`` such as the history so far) in one PUT, then deletes the previous state.
   S3 replaces an object atomically and ``FolderStore`` renames a finished temporary file,
   so a reader sees the old pointer or the new one, never a mix. A caller may instead keep
   ``Checkpoint.to_json()`` in a trial attribute (the database commit is then the record)
   and read it back with ``read_checkpoint``.
3. ``load_checkpoint`` follows the pointer. A pointer to a missing object, or to bytes of
   another size or hash, counts as no checkpoint: the trial starts from epoch 0.
4. ``discard_checkpoints`` deletes the pointer first, then every object under the unit's
   (or the whole study's) folder, orphans included: a finished trial keeps none.

All functions raise the store's own errors; wrap calls in ``artifact_store.store_errors``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from search.study.store_objects import get_bytes, put_bytes, remove, remove_all

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

logger = logging.getLogger(__name__)

POINTER = "latest.json"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A stored state: where it is, which epoch it ends, and how to know it is whole."""

    artifact_id: str
    epoch: int
    size: int
    sha256: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Checkpoint:
        fields = json.loads(text)
        return cls(artifact_id=str(fields["artifact_id"]), epoch=int(fields["epoch"]),
                   size=int(fields["size"]), sha256=str(fields["sha256"]),
                   extra=dict(fields.get("extra", {})))


def folder(study_name: str, unit: str | None = None) -> str:
    """``checkpoints/<study>/`` or ``checkpoints/<study>/<unit>/``: ids under it are its."""
    for part in (study_name, unit):
        if part is not None and (not part or "/" in part or part in (".", "..")):
            raise ValueError(f"a study or unit name must be one path segment, not {part!r}")
    return f"checkpoints/{study_name}/" + (f"{unit}/" if unit is not None else "")


def put_checkpoint(store: ArtifactStore, study_name: str, unit: str, epoch: int,
                   data: bytes, extra: dict[str, Any] | None = None) -> Checkpoint:
    """Step 1: store ``data`` under a fresh id; it counts only once committed."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, not {epoch}")
    artifact_id = f"{folder(study_name, unit)}epoch-{epoch}-{uuid.uuid4().hex}.npz"
    put_bytes(store, artifact_id, data)
    return Checkpoint(artifact_id, epoch, len(data), hashlib.sha256(data).hexdigest(),
                      dict(extra or {}))


def commit_checkpoint(store: ArtifactStore, study_name: str, unit: str,
                      checkpoint: Checkpoint, previous: Checkpoint | None = None) -> None:
    """Step 2: point the unit at ``checkpoint`` (one atomic write), then drop ``previous``."""
    put_bytes(store, folder(study_name, unit) + POINTER, checkpoint.to_json().encode())
    if previous is not None and previous.artifact_id != checkpoint.artifact_id:
        remove(store, previous.artifact_id)


def save_checkpoint(store: ArtifactStore, study_name: str, unit: str, epoch: int, data: bytes,
                    extra: dict[str, Any] | None = None,
                    previous: Checkpoint | None = None) -> Checkpoint:
    """Steps 1 and 2: the state after ``epoch`` completed epochs, stored and committed."""
    checkpoint = put_checkpoint(store, study_name, unit, epoch, data, extra)
    commit_checkpoint(store, study_name, unit, checkpoint, previous)
    return checkpoint


def read_checkpoint(store: ArtifactStore, checkpoint: Checkpoint) -> bytes | None:
    """The state ``checkpoint`` records, or None if it is missing or not whole."""
    data = get_bytes(store, checkpoint.artifact_id)
    if data is None:
        logger.warning("checkpoint %s is recorded but missing; starting over",
                       checkpoint.artifact_id)
        return None
    if len(data) != checkpoint.size or hashlib.sha256(data).hexdigest() != checkpoint.sha256:
        logger.warning("checkpoint %s is not the one recorded (%d bytes, %d expected); "
                       "starting over", checkpoint.artifact_id, len(data), checkpoint.size)
        return None
    return data


def load_checkpoint(store: ArtifactStore, study_name: str,
                    unit: str) -> tuple[Checkpoint, bytes] | None:
    """Step 3: the unit's last committed checkpoint and its state, or None."""
    pointer = get_bytes(store, folder(study_name, unit) + POINTER)
    if pointer is None:
        return None
    try:
        checkpoint = Checkpoint.from_json(pointer)
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable checkpoint pointer of %s/%s (%s)", study_name,
                       unit, error)
        return None
    data = read_checkpoint(store, checkpoint)
    return None if data is None else (checkpoint, data)


def discard_checkpoints(store: ArtifactStore, study_name: str, unit: str | None = None) -> None:
    """Step 4: delete a unit's checkpoints (all the study's when ``unit`` is None)."""
    if unit is not None:
        remove(store, folder(study_name, unit) + POINTER)
    remove_all(store, folder(study_name, unit))
