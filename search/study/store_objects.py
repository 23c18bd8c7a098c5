"""Objects in an Optuna artifact store: the two stores a location opens, and byte helpers.

``FolderStore`` and ``PrefixedBoto3Store`` are Optuna's ``FileSystemArtifactStore`` and
``Boto3ArtifactStore`` with what a shared store needs added: atomic writes and sub-folders
for the first, a key prefix for the second, and ``remove_all(prefix)`` for both (Optuna's
store protocol cannot list). Each call waits out a fault that ``passes`` (a folder briefly
unwritable, an S3 endpoint refusing, timing out or answering 5xx) through the store's
``outage`` (``search.study.retry``; ``artifact_store.open_store`` sets it). Every call can be
repeated: a write puts the same bytes under the same id, a removal finds nothing left to
remove. Call the helpers inside ``artifact_store.store_errors`` to turn failures into one
line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from search.study import retry

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

T = TypeVar("T")
# A shared folder that may be writable again in a moment: permissions or a read-only remount
# being changed, a network file system's stale handle, lost server or timeout. Never a full
# disk: that lasts, and ends the run in one line at once.
_PASSING_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ESTALE, errno.EIO,
                   errno.ENOTCONN, errno.ETIMEDOUT, errno.EAGAIN, errno.EBUSY,
                   errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH,
                   errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED}
# What an S3 server answers when it is busy or failing, rather than refusing the request.
_PASSING_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                  "Throttling", "ThrottlingException", "RequestLimitExceeded"}


def passes(error: BaseException) -> bool:
    """Whether a store failure may pass by itself: a connection refused, reset or timed
    out, a 5xx or throttling answer, a folder briefly unwritable."""
    try:
        import boto3.exceptions
        import botocore.exceptions as boto
    except ModuleNotFoundError:
        boto = None
    if boto is not None:
        if isinstance(error, boto3.exceptions.Boto3Error):  # an upload's failure, wrapped
            error = error.__cause__ or error.__context__ or error
        if isinstance(error, boto.HTTPClientError | boto.ConnectionError):
            return True
        if isinstance(error, boto.ClientError):
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or error.response.get("Error", {}).get("Code") \
                in _PASSING_CODES
    return isinstance(error, OSError) and error.errno in _PASSING_ERRNOS


class _Waiting:
    """A store whose calls wait out its outage (none: every failure is raised at once)."""

    outage: retry.Outage | None = None

    def _waited(self, operation: Callable[[], T]) -> T:
        return self.outage.call(operation) if self.outage else operation()


class FolderStore(_Waiting, FileSystemArtifactStore):
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
        data = content_body.read()  # once: every try writes the same bytes
        self._waited(lambda: self._write(artifact_id, data))

    def _write(self, artifact_id: str, data: bytes) -> None:
        path = self._path(artifact_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._waited(lambda: FileSystemArtifactStore.open_reader(self, artifact_id))

    def remove(self, artifact_id: str) -> None:
        self._waited(lambda: FileSystemArtifactStore.remove(self, artifact_id))

    def remove_all(self, prefix: str) -> None:
        # A folder that cannot be emptied must say so: a pointer left behind would resume a
        # later run of the unit from this checkpoint.
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self._path(prefix.rstrip("/")))

        self._waited(remove)


class PrefixedBoto3Store(_Waiting, Boto3ArtifactStore):
    """Optuna's S3 store (which takes a bucket only) with every key under ``prefix``, so one
    bucket can hold many studies. Readers must use this class with the same prefix."""

    def __init__(self, bucket_name: str, prefix: str, client: Any) -> None:
        super().__init__(bucket_name, client=client)
        self.prefix = prefix

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """The whole object, read in one try: a body cut off half-way is read again."""
        def read() -> BinaryIO:
            with contextlib.closing(super(PrefixedBoto3Store, self).open_reader(
                    self.prefix + artifact_id)) as body:
                return BytesIO(body.read())

        return self._waited(read)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        data = content_body.read()  # once: every try uploads the same bytes
        self._waited(lambda: Boto3ArtifactStore.write(self, self.prefix + artifact_id,
                                                       BytesIO(data)))

    def remove(self, artifact_id: str) -> None:
        self._waited(lambda: Boto3ArtifactStore.remove(self, self.prefix + artifact_id))

    def remove_all(self, prefix: str) -> None:
        def remove() -> None:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:  # at most 1000 keys a page, as delete_objects takes
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

        self._waited(remove)


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
