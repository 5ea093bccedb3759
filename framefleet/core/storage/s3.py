"""`S3Storage`: a bucket and prefix on any S3-compatible server (AWS, SeaweedFS, MinIO).

Endpoint, credentials and region come from boto3's standard configuration (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws/config``...), so the
same code talks to AWS or a local server. botocore errors are translated here, at the edge.
"""

from __future__ import annotations

import mimetypes
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import boto3  # type: ignore[import-untyped, unused-ignore]
import botocore.exceptions as boto_errors  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]

from framefleet.core.errors import (
    BucketNotFound,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    TransientStorageError,
)
from framefleet.core.storage.base import (
    Storage,
    StorageObject,
    check_key,
    check_prefix,
    matches,
    suffix_matcher,
    uri_scheme,
    with_slash,
)
from framefleet.core.storage.ranged import open_ranged

S3Client = Any
"""A boto3 S3 client (boto3 ships no type stubs)."""

MAX_ATTEMPTS = 5
"""Attempts per S3 call, first one included, in botocore's "standard" retry mode."""

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP connection to the S3 endpoint, per attempt."""

READ_TIMEOUT_S = 60.0
"""Seconds to wait for the next bytes of a response, per attempt."""

PAGE_SIZE = 1000
"""Keys per ListObjectsV2 request (S3's maximum)."""

BUCKET_CHECK_S = 60.0
"""Seconds a HeadBucket that found the bucket stands for, when `exists` meets missing keys."""

_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "403",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
    }
)
_CREDENTIALS_HINT = (
    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that "
    "this identity may use the bucket"
)

_clients: dict[int, S3Client] = {}
_clients_lock = threading.Lock()


def make_client(
    *,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    region: str | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> S3Client:
    """Build a new S3 client; each argument left None comes from the standard AWS configuration.

    Most code should use `shared_client` instead; this is for tests and tools that need other
    timeouts, retries or credentials.

    Example:
        >>> client = make_client(endpoint_url="http://127.0.0.1:8333", max_attempts=1)
        >>> S3Storage("s3://bucket/in/", client=client).exists("001.jpg")
        False
    """
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
    )
    # A session of its own: boto3's module-level default session is not thread-safe.
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
        config=config,
    )


def shared_client() -> S3Client:
    """Return this process's S3 client, built by `make_client` on first use.

    Keyed by process id: a child forked by Celery's prefork pool builds its own, because a
    client's connection pool must not be shared across a fork. boto3 clients are thread-safe.
    """
    pid = os.getpid()
    with _clients_lock:
        client = _clients.get(pid)
        if client is None:
            _clients.clear()  # a parent's client, inherited over fork: never use it
            client = _clients[pid] = make_client()
        return client


def clear_client_cache() -> None:
    """Drop the shared client so the next use re-reads the AWS configuration (tests, tools)."""
    with _clients_lock:
        _clients.clear()


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix/``; each key is stored at ``prefix + key``.

    Writes are single PutObject calls, which S3 applies atomically. Keys ending in ``/``
    (the "folder" markers some consoles create) are not objects and are never listed.

    Example:
        >>> storage = S3Storage("s3://frames/in/")
        >>> storage.write_bytes("cats/001.jpg", jpeg_bytes)
        >>> [obj.key for obj in storage.list("cats/")]
        ['cats/001.jpg']
    """

    def __init__(
        self, uri: str, *, client: S3Client | None = None, page_size: int = PAGE_SIZE
    ) -> None:
        """Bind to ``uri``; no request is made until the first operation.

        Args:
            uri: ``s3://bucket`` or ``s3://bucket/prefix``.
            client: Client to use; None uses `shared_client` of the calling process.
            page_size: Keys per list request, 1 to 1000 (small values test pagination).

        Raises:
            StorageError: ``uri`` is not an ``s3://`` URI with a bucket, or ``page_size`` is out
                of range.
        """
        if uri_scheme(uri) != "s3":
            raise StorageError(f"S3Storage takes an s3://bucket/prefix URI, got {uri!r}")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise StorageError(f"S3 URI {uri!r} has no bucket; expected 's3://bucket/prefix/'")
        if not 1 <= page_size <= PAGE_SIZE:
            raise StorageError(f"page_size must be 1..{PAGE_SIZE}, got {page_size}")
        self.bucket = bucket
        self.prefix = check_prefix(with_slash(prefix) if prefix.strip("/") else "")
        self.uri = f"s3://{bucket}/{self.prefix}"
        self.page_size = page_size
        self._client = client
        self._bucket_seen_at = -BUCKET_CHECK_S  # monotonic time a HeadBucket last found it

    @property
    def client(self) -> S3Client:
        """The client in use: the one given, or the calling process's shared client."""
        return self._client if self._client is not None else shared_client()

    def read_bytes(self, key: str) -> bytes:
        """GetObject and read the body; see `Storage.read_bytes`."""
        full = self.prefix + check_key(key)
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            data: bytes = response["Body"].read()
        return data

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """One PutObject; see `Storage.write_bytes`."""
        full = self.prefix + check_key(key)
        guessed = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=guessed)

    def download(self, key: str, path: Path) -> None:
        """boto3's managed download (ranged GETs in parallel); see `Storage.download`."""
        full = self.prefix + check_key(key)
        with self._errors("read", key):
            self.client.download_file(self.bucket, full, str(path))

    def open_read(self, key: str) -> BinaryIO:
        """One HeadObject, then a ranged GetObject per block read; see `Storage.open_read`."""
        full = self.prefix + check_key(key)
        with self._errors("read", key):
            size = int(self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])

        def fetch(start: int, end: int) -> bytes:
            with self._errors("read", key):
                response = self.client.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={start}-{end - 1}"
                )
                data: bytes = response["Body"].read()
            return data

        return open_ranged(size, fetch)

    def upload(self, path: Path, key: str) -> None:
        """boto3's managed upload (multipart above 8 MiB); see `Storage.upload`."""
        full = self.prefix + check_key(key)
        guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
        with self._errors("write", key):
            self.client.upload_file(
                str(path), self.bucket, full, ExtraArgs={"ContentType": guessed}
            )

    def delete(self, key: str) -> None:
        """DeleteObject; see `Storage.delete`."""
        full = self.prefix + check_key(key)
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def exists(self, key: str) -> bool:
        """HeadObject; on a 404, HeadBucket (at most every ``BUCKET_CHECK_S``) tells a missing key
        from a missing bucket."""
        full = self.prefix + check_key(key)
        try:
            with self._errors("check", key):
                self.client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            # HEAD responses have no body, so a 404 does not say whether the bucket is missing.
            # Asked once a minute at most: a resumed job checks every image, and most are new.
            if time.monotonic() - self._bucket_seen_at > BUCKET_CHECK_S:
                self.ensure_bucket_exists()
                self._bucket_seen_at = time.monotonic()
            return False
        return True

    def list(
        self, prefix: str = "", suffixes: Iterable[str] | None = None, start_after: str = ""
    ) -> Iterator[StorageObject]:
        """Page through ListObjectsV2 ``page_size`` keys at a time; see `Storage.list`."""
        start = self.prefix + check_prefix(prefix)
        return self._iterate(start, suffix_matcher(suffixes), start_after)

    def _iterate(
        self, start: str, wanted: tuple[str, ...] | None, start_after: str
    ) -> Iterator[StorageObject]:
        extra = {"StartAfter": self.prefix + start_after} if start_after else {}
        with self._errors("list", start[len(self.prefix) :]):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=start,
                PaginationConfig={"PageSize": self.page_size},
                **extra,
            )
            for page in pages:
                for entry in page.get("Contents", ()):
                    key: str = entry["Key"][len(self.prefix) :]
                    if key and not key.endswith("/") and matches(key, wanted):
                        modified = entry.get("LastModified")
                        yield StorageObject(
                            key=key,
                            size=int(entry["Size"]),
                            tag=str(entry.get("ETag", "")).strip('"'),
                            modified=modified.timestamp() if modified else 0.0,
                        )

    def ensure_bucket_exists(self) -> None:
        """Raise `BucketNotFound` unless the bucket exists (one HeadBucket request)."""
        try:
            with self._errors("find the bucket of", ""):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound as exc:  # HeadBucket's 404 has no body, so no NoSuchBucket code
            raise self._bucket_not_found("find the bucket of", "") from exc.__cause__

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist yet (demo and tests; idempotent).

        Raises:
            StorageUnavailable: The server is unreachable or refuses our credentials.
            StorageError: The name is taken by another account, or is not a valid bucket name.
        """
        region = self.client.meta.region_name
        extra: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._errors("create the bucket of", ""):
            try:
                self.client.create_bucket(Bucket=self.bucket, **extra)
            except boto_errors.ClientError as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Translate botocore errors raised inside the block into framefleet's tree."""
        try:
            yield
        except boto_errors.ClientError as exc:
            raise self._client_error(exc, action, key) from exc
        except (
            boto_errors.NoCredentialsError,
            boto_errors.PartialCredentialsError,
            boto_errors.CredentialRetrievalError,
        ) as exc:
            raise StorageUnavailable(
                f"no usable S3 credentials to {action} {self.uri}{key} ({exc}); set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from exc
        except boto_errors.ConnectionError as exc:  # refused, DNS, connect timeout, TLS, proxy
            raise StorageUnavailable(
                f"cannot connect to the S3 endpoint {self._endpoint} to {action} "
                f"{self.uri}{key} ({exc}); check AWS_ENDPOINT_URL and that the server is running"
            ) from exc
        except (boto_errors.HTTPClientError, boto_errors.IncompleteReadError) as exc:
            raise TransientStorageError(
                f"the connection to {self._endpoint} broke while trying to {action} "
                f"{self.uri}{key}, after retries ({exc}); try again later"
            ) from exc
        except boto_errors.BotoCoreError as exc:
            raise StorageError(f"cannot {action} {self.uri}{key}: {exc}") from exc

    def _client_error(self, exc: boto_errors.ClientError, action: str, key: str) -> StorageError:
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        where = f"{self.uri}{key}"
        if code.isdigit() and not _from_s3(exc):
            # A bare HTTP status with none of the x-amz-* headers every S3 server (AWS, MinIO,
            # SeaweedFS, Ceph) sends: the endpoint is some other web server.
            return StorageUnavailable(
                f"{self._endpoint} answered HTTP {status} when asked to {action} {where}, "
                "without any S3 headers: it does not look like an S3 server; check "
                "AWS_ENDPOINT_URL (unset it for AWS)"
            )
        if code == "NoSuchBucket":
            return self._bucket_not_found(action, key)
        if code in _MISSING_KEY_CODES:
            return ObjectNotFound(f"object not found: {where}; check the key and the prefix")
        if code in _CREDENTIAL_CODES:
            return StorageUnavailable(
                f"{self._endpoint} refused to let us {action} {where} ({code}); "
                + _CREDENTIALS_HINT
            )
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientStorageError(
                f"{self._endpoint} failed to {action} {where} with {code} (HTTP {status}) after "
                "retries; try again later"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return StorageError(f"cannot {action} {where}: {code} (HTTP {status}) {message}".strip())

    def _bucket_not_found(self, action: str, key: str) -> BucketNotFound:
        return BucketNotFound(
            f"bucket {self.bucket!r} does not exist on {self._endpoint} (needed to {action} "
            f"{self.uri}{key}); create it or check the bucket name in the URI"
        )

    @property
    def _endpoint(self) -> str:
        endpoint: str = self.client.meta.endpoint_url
        return endpoint


def _from_s3(exc: boto_errors.ClientError) -> bool:
    """Whether the error response carries an S3 server's ``x-amz-*`` headers."""
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return any(str(name).lower().startswith("x-amz-") for name in headers)


def _code(exc: boto_errors.ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code
