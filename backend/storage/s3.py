"""Blob store in an S3 (or S3-compatible) bucket (``s3://`` URLs).

Each blob is an object under an optional prefix; any S3-compatible server
(MinIO, moto) works through ``endpoint_url``. boto3 and botocore are imported
only when an :class:`S3Store` is used, so the file back end does not need them.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from backend.storage.base import (
    BlobNotFoundError,
    BlobStore,
    StorageError,
    _check_data,
    _check_expiry,
)
from backend.storage.keys import (
    MAX_KEY_LENGTH,
    _is_valid_key,
    _reject,
    validate_key,
    validate_prefix,
)

__all__ = ["S3Store"]

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3Store(BlobStore):
    """Blobs as objects in an S3 (or S3-compatible) bucket.

    Parameters
    ----------
    bucket : str
        Bucket name (3-63 lowercase letters, digits, '.', '-').
    prefix : str
        Folder inside the bucket; key ``"a/b"`` is object ``"<prefix>/a/b"``.
    endpoint_url : str, optional
        S3-compatible server, e.g. ``"http://minio:9000"``; None means AWS.
    region : str, optional
        Region name; None uses the AWS configuration (AWS_DEFAULT_REGION).
    create_bucket : bool
        Create the bucket if it does not exist (contacts the server).

    Raises
    ------
    StorageError
        If the bucket name or prefix is malformed, or creation fails.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        create_bucket: bool = False,
    ):
        import boto3
        from botocore.config import Config

        if not _BUCKET_NAME.fullmatch(bucket or "") or ".." in bucket:
            raise StorageError(
                f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.', '-'"
            )
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            signature_version="s3v4",
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        if create_bucket:
            self._create_bucket()

    def _object_key(self, key: str) -> str:
        validate_key(key)
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full) > MAX_KEY_LENGTH:
            raise _reject(key, f"with the store prefix it exceeds {MAX_KEY_LENGTH} characters")
        return full

    def _where(self) -> str:
        return f"{self.url} at {self.endpoint_url}" if self.endpoint_url else self.url

    def _storage_error(
        self, exc: Exception, action: str, key: str | None, missing_is_blob: bool
    ) -> StorageError:
        """Turn a botocore exception into a StorageError a user can act on."""
        from botocore.exceptions import ClientError

        target = f"{key!r} in {self._where()}" if key is not None else self._where()
        if not isinstance(exc, ClientError):
            return StorageError(f"cannot {action} {target}: {exc}")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if missing_is_blob and code in ("NoSuchKey", "404", "NotFound"):
            return BlobNotFoundError(f"no blob {key!r} in {self._where()}")
        if code in ("NoSuchBucket", "404", "NotFound"):
            return StorageError(
                f"S3 bucket {self.bucket!r} does not exist ({self._where()}); "
                "create it or open the store with create_bucket=True"
            )
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"S3 refused to {action} {target} ({code}); check the AWS credentials "
                "and the bucket policy"
            )
        return StorageError(
            f"S3 could not {action} {target}: {code} {error.get('Message', '')}".rstrip()
        )

    @contextmanager
    def _translate_errors(
        self, action: str, key: str | None = None, *, missing_is_blob: bool = False
    ) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            error = self._storage_error(exc, action, key, missing_is_blob)
            raise error from (None if isinstance(error, BlobNotFoundError) else exc)

    def _create_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
                raise self._storage_error(exc, "open", None, False) from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "reach", None, False) from exc
        region = self._client.meta.region_name
        arguments = {"Bucket": self.bucket}
        if region and region not in ("us-east-1", "aws-global"):
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**arguments)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise self._storage_error(exc, "create bucket", None, False) from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "create bucket", None, False) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """See :meth:`BlobStore.put_bytes`; S3 PUTs are atomic."""
        object_key = self._object_key(key)
        _check_data(data)
        with self._translate_errors("write", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=bytes(data),
                ContentType=content_type or "application/octet-stream",
            )

    def get_bytes(self, key: str) -> bytes:
        """See :meth:`BlobStore.get_bytes`."""
        object_key = self._object_key(key)
        with self._translate_errors("read", key, missing_is_blob=True):
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        """See :meth:`BlobStore.exists`; a missing bucket also reads as False."""
        try:
            with self._translate_errors("look up", key, missing_is_blob=True):
                self._client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except BlobNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """See :meth:`BlobStore.delete`."""
        object_key = self._object_key(key)
        with self._translate_errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def _list_object_keys(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translate_errors(f"list prefix {prefix!r} of"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"][strip:]

    def list(self, prefix: str = "") -> list[str]:
        """See :meth:`BlobStore.list`; pages through every result."""
        return sorted(key for key in self._list_object_keys(prefix) if _is_valid_key(key))

    def delete_prefix(self, prefix: str) -> int:
        """See :meth:`BlobStore.delete_prefix`; deletes in batches of 1000."""
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._object_key(key)} for key in keys[start : start + 1000]]
            with self._translate_errors(f"delete prefix {prefix!r} of"):
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 could not delete {len(errors)} blobs under {prefix!r}, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}"
                )
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        """See :meth:`BlobStore.presigned_url`; a signed GET URL."""
        object_key = self._object_key(key)
        _check_expiry(expires_s)
        with self._translate_errors("sign a URL for", key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=int(expires_s),
            )

    def check(self) -> None:
        """HEAD the bucket; raise :class:`StorageError` if it fails."""
        with self._translate_errors("reach bucket"):
            self._client.head_bucket(Bucket=self.bucket)
