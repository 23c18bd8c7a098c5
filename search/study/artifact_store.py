"""Where a study's files live: one Optuna artifact store, a shared folder or an S3 bucket.

A location is a folder path (``studies/mnist.artifacts``, ``/mnt/shared/mnist``) or an S3 URL
(``s3://bucket/prefix``). S3 goes through boto3, so credentials, region and the endpoint of an
S3-compatible server come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3) and never
from the URL, the command line or the study::

    location = artifact_store.resolve(flag, definition_value, default_folder)
    store = artifact_store.check(location)      # one SearchError line if unusable
    with artifact_store.store_errors(location):
        artifact_store.put_bytes(store, "some/id", data)

Past ``check``, its calls wait out a fault that passes (``search.study.retry``); checkpoints
are written through it by ``search.study.store_checkpoints``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from search import disk_space
from search.errors import DiskFull, SearchError, StoreError
from search.locations import ARTIFACTS_VARIABLE, artifacts_location
from search.study import retry
from search.study.store_objects import (
    FolderStore,
    PrefixedBoto3Store,
    get_bytes,
    passes,
    put_bytes,
    remove,
    remove_all,
)

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["ARTIFACTS_VARIABLE", "Location", "check", "display", "get_bytes", "open_store",
           "parse", "put_bytes", "remove", "remove_all", "resolve", "store_errors"]

# boto3's defaults (60 s reads, up to 5 tries) would hang a call for minutes on a stopped
# server. With these a GET gives up after about ATTEMPTS x READ_TIMEOUT seconds and a PUT
# after twice that (it waits for "100 Continue", then for the reply); then it is retried.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
ATTEMPTS = 3  # in all, the first included: a throttled or dropped request is tried again
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed location: a folder, or a bucket and a key prefix ('' or ending in '/')."""

    folder: Path | None = None
    bucket: str | None = None
    prefix: str = ""


def resolve(flag: str | None, study_file: str | None, default_folder: Path) -> str:
    """--artifacts, else $SEARCH_ARTIFACTS, else the study file's [storage] artifacts, else
    the folder beside the database (the caller's default), as for the database URL."""
    return artifacts_location(flag, study_file, default_folder)


def display(location: str) -> str:
    """The location as messages show it: anything before an '@' in a URL is masked."""
    return _USERINFO.sub(r"\1***@", location)


def parse(location: str) -> Location:
    """A folder path (or file:// URL) or s3://bucket/prefix; anything else is one line."""
    shown = display(location)
    match = _SCHEME.match(location)
    if not location.strip():
        raise SearchError("artifact store: the location is empty; name a folder or "
                          "s3://bucket/prefix")
    if match is None or match.group(1).lower() == "file":
        return Location(folder=Path(location.removeprefix("file://")).expanduser())
    if match.group(1).lower() != "s3":
        raise SearchError(f"artifact store {shown}: unknown scheme '{match.group(1)}'; use a "
                          "folder path or s3://bucket/prefix")
    if shown != location:
        raise SearchError(f"artifact store {shown}: credentials do not belong in the URL; set "
                          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
    if "?" in location or "#" in location:
        raise SearchError(f"artifact store {shown}: an S3 location takes no '?' or '#' part; "
                          "set options through the AWS environment variables")
    bucket, _, prefix = location[len(match.group(0)):].partition("/")
    if not _BUCKET.match(bucket):
        raise SearchError(f"artifact store {shown}: '{bucket}' is not a valid S3 bucket name "
                          "(3-63 lower-case letters, digits, dots, hyphens); write "
                          "s3://bucket/prefix")
    prefix = prefix.strip("/")
    return Location(bucket=bucket, prefix=f"{prefix}/" if prefix else "")


def _waiting(store: FolderStore | PrefixedBoto3Store, location: str) -> ArtifactStore:
    """``store``, each call through the process's outage of ``location``; a wait's reason
    is the error's words without the advice after ';'."""
    shown = display(location)
    store.outage = retry.outage(f"artifact store {shown}", passes,
                                lambda error: describe_error(error, location).split(";")[0],
                                lambda text: StoreError(f"artifact store {shown}: {text}"))
    return store


def open_store(location: str, *, connect_timeout: float = CONNECT_TIMEOUT,
               read_timeout: float = READ_TIMEOUT, attempts: int = ATTEMPTS) -> ArtifactStore:
    """The store at ``location``, opened without touching it (``check`` does that); its
    calls wait out a fault that passes."""
    parsed = parse(location)
    if parsed.folder is not None:
        return _waiting(FolderStore(parsed.folder), location)
    try:
        import boto3
        import botocore.config
    except ModuleNotFoundError:
        raise SearchError(f"artifact store {display(location)}: boto3 is not installed "
                          "(pip install -e '.[s3]')") from None
    # Most S3-compatible servers (MinIO, moto, Ceph) answer at one host name, not one per
    # bucket; path-style addressing reaches them, virtual-host style needs DNS set up.
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = botocore.config.Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"total_max_attempts": attempts, "mode": "standard"},
        s3={"addressing_style": "path"} if custom else None)
    with store_errors(location):
        client = boto3.session.Session().client("s3", config=config)
    return _waiting(PrefixedBoto3Store(parsed.bucket or "", parsed.prefix, client), location)


def check(location: str, store: ArtifactStore | None = None) -> ArtifactStore:
    """Write, read back and remove a probe object: the store works, or one SearchError."""
    parsed = parse(location)
    folder = parsed.folder
    # Root may write anywhere; a folder with no write bit was made read-only on purpose.
    if folder is not None and folder.is_dir() and not folder.stat().st_mode & _ANY_WRITE_BIT:
        raise SearchError(f"artifact store {location}: folder {folder} is read-only; make it "
                          "writable or name another store")
    store = store or open_store(location)
    probe = f".search-probe-{uuid.uuid4().hex}"
    with store_errors(location), retry.at_once():
        put_bytes(store, probe, b"probe")
        back = get_bytes(store, probe)
        remove(store, probe)
    if back != b"probe":
        raise SearchError(f"artifact store {display(location)}: an object written there "
                          "could not be read back; check the store's consistency settings")
    return store


def _scrub(text: str) -> str:
    """Never show a credential, even one a server echoes back."""
    for name in _SECRETS:
        secret = os.environ.get(name, "")
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def describe_error(error: BaseException, location: str) -> str:
    """What went wrong with the store and what to do, in one line."""
    parsed = parse(location)
    if parsed.folder is not None and isinstance(error, OSError):  # a folder store raises no other
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"folder {parsed.folder} is read-only; make it writable or name another store"
        if error.errno in disk_space.FULL_ERRNOS:
            return disk_space.full_line(parsed.folder)
        return f"{error.strerror or error} ({error.filename or parsed.folder})"
    name = type(error).__name__
    code = str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))
    if code in ("NoSuchBucket", "404") or "NoSuchBucket" in str(error):
        return f"bucket '{parsed.bucket}' does not exist; create it or fix the URL"
    if code in _DENIED:
        return (f"access denied ({code}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                f"and the permissions on bucket '{parsed.bucket}'")
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if name in ("EndpointConnectionError", "ConnectTimeoutError"):
        return f"cannot connect ({_scrub(str(error))}); start the server or fix AWS_ENDPOINT_URL"
    if name in ("ReadTimeoutError", "ResponseStreamingError", "ConnectionClosedError"):
        return ("the server stopped answering; files already stored are intact: run again "
                "once it is back")
    return f"{name}: {_scrub(str(error))}"


def _errors() -> tuple[type[BaseException], ...]:
    """The failures a store can raise: OSError always, boto3's when it is installed."""
    try:
        import boto3.exceptions
        import botocore.exceptions
    except ModuleNotFoundError:
        return (OSError,)
    return (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
            boto3.exceptions.Boto3Error)


@contextlib.contextmanager
def store_errors(location: str) -> Iterator[None]:
    """Turn store failures inside the block into one StoreError line naming the store."""
    try:
        yield
    except _errors() as error:
        line = f"artifact store {display(location)}: {describe_error(error, location)}"
        raise (DiskFull if disk_space.is_full(error) else StoreError)(line) from None
