"""Objects in an Optuna artifact store: the two stores a location opens, and byte helpers.

``FolderStore`` and ``PrefixedBoto3Store`` are Optuna's ``FileSystemArtifactStore`` and
``Boto3ArtifactStore`` with what a shared store needs added: atomic writes and sub-folders
for the first, a key prefix for the second, and ``remove_all(prefix)`` for both (Optuna's
store protocol cannot list). Call the helpers inside ``artifact_store.store_errors`` to turn
failures into one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


class FolderStore(FileSystemArtifactStore):
    """Optuna's folder store, with the sub-folders of an id made when first needed and each
    write atomic (a temporary file, renamed): a reader sees a whole object or the old one."""

    def __init__(self, base_path: str | Path) -> None:
        super().__init__(base_path)
        self.root = Path(base_path)  # ours: Optuna keeps its copy private

    def _path(self, artifact_id: str) -> Path:
        """Where the id lives; never outside the root (as Optuna's own store checks)."""
        path = (self.root / artifact_id).resolve()
        if os.path.isabs(artifact_id) or not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"artifact id {artifact_id!r} leaves the store's folder")
        return path

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        path = self._path(artifact_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as file:
                shutil.copyfileobj(content_body, file)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def remove_all(self, prefix: str) -> None:
        # A folder that cannot be emptied must say so: a pointer left behind would resume a
        # later run of the unit from this checkpoint.
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._path(prefix.rstrip("/")))


class PrefixedBoto3Store(Boto3ArtifactStore):
    """Optuna's S3 store (which takes a bucket only) with every key under ``prefix``, so one
    bucket can hold many studies. Readers must use this class with the same prefix."""

    def __init__(self, bucket_name: str, prefix: str, client: Any) -> None:
        super().__init__(bucket_name, client=client)
        self.prefix = prefix

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return super().open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        super().write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        super().remove(self.prefix + artifact_id)

    def remove_all(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in pages:  # at most 1000 keys a page, as delete_objects takes
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def put_bytes(store: ArtifactStore, artifact_id: str, data: bytes) -> None:
    store.write(artifact_id, BytesIO(data))


def get_bytes(store: ArtifactStore, artifact_id: str) -> bytes | None:
    """The object's bytes, or None when there is no such object."""
    try:
        reader = store.open_reader(artifact_id)
    except ArtifactNotFound:
        return None
    try:
        return reader.read()
    finally:
        reader.close()


def remove(store: ArtifactStore, artifact_id: str) -> None:
    """Delete the object; one that is already gone is fine."""
    with contextlib.suppress(ArtifactNotFound):
        store.remove(artifact_id)


def remove_all(store: ArtifactStore, prefix: str) -> None:
    """Delete every object whose id starts with ``prefix`` (a 'folder' such as 'a/b/')."""
    if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ValueError(f"prefix must be a relative folder ending in '/', not {prefix!r}")
    remover = getattr(store, "remove_all", None)
    if remover is None:
        raise ValueError(f"{type(store).__name__} cannot list its objects; open the store "
                         "with open_store")
    remover(prefix)
