"""Where diagnosed x-rays are kept, always in-house: in the database row itself (the default,
nothing to run), in a folder, or in an S3-compatible object store such as the MinIO that
compose runs. The orchestrator writes, reads and deletes them; `export xray-retrain` reads
the confirmed ones back. Both read the same IMAGE_STORE_* settings.

A diagnosis row stored outside the database holds the image's key: `<tenant id>/<32 hex>.<ext>`,
made here, never taken from a caller.
"""

import io
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import PROJECT_ROOT

KEY = re.compile(r"^[0-9]{1,19}/[0-9a-f]{32}\.(png|jpg)$")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


class ImageStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGE_STORE_", extra="ignore")

    kind: Literal["database", "folder", "s3"] = "database"
    folder: Path = PROJECT_ROOT / "var" / "images"  # kind folder: created owner-only
    # kind s3: the endpoint as host:port, its bucket (created when missing) and credentials
    s3_endpoint: str = "127.0.0.1:9000"
    s3_bucket: str = "xrays"
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = False  # https to the endpoint
    s3_region: str | None = None
    s3_timeout_s: float = 10.0


class ImageMissing(LookupError):
    """The store has no image under that key (deleted by hand, or another store's)."""


class ImageStoreUnavailable(RuntimeError):
    """The store could not be reached or refused the operation."""


class ImageStore(Protocol):
    kind: str

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...  # an absent image is not an error


def new_key(tenant_id: int, content_type: str) -> str:
    return f"{tenant_id}/{uuid.uuid4().hex}.{EXTENSIONS[content_type]}"


def open_image_store(settings: ImageStoreSettings | None = None) -> ImageStore | None:
    """The configured store; None where images stay in the database rows."""
    settings = settings or ImageStoreSettings()
    if settings.kind == "folder":
        return FolderImages(settings.folder)
    if settings.kind == "s3":
        return ObjectStoreImages(settings)
    return None


def _checked(key: str) -> str:
    if not KEY.match(key):  # never a path of the caller's: refuse what we did not make
        raise ImageMissing(f"not an image key: {key[:80]!r}")
    return key


class FolderImages:
    kind = "folder"

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.root / _checked(key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        # whole or not at all: a crash mid-write leaves a temporary file, never half an image
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return (self.root / _checked(key)).read_bytes()
        except FileNotFoundError:
            raise ImageMissing(f"no image {key} in {self.root}") from None

    def delete(self, key: str) -> None:
        (self.root / _checked(key)).unlink(missing_ok=True)


class ObjectStoreImages:
    """An S3 bucket through the MinIO client, with bounded timeouts and retries."""

    kind = "s3"

    def __init__(self, settings: ImageStoreSettings):
        import urllib3
        from minio import Minio

        timeout = urllib3.Timeout(connect=settings.s3_timeout_s, read=settings.s3_timeout_s)
        retries = urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504))
        self.bucket = settings.s3_bucket
        self.client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=16),
        )

    def ensure_bucket(self) -> None:
        with self._errors("create the bucket"):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._errors("store the image"):
            self.client.put_object(
                self.bucket, _checked(key), io.BytesIO(data), len(data), content_type=content_type
            )

    def get(self, key: str) -> bytes:
        with self._errors("read the image"):
            response = self.client.get_object(self.bucket, _checked(key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def delete(self, key: str) -> None:
        with self._errors("delete the image"):
            self.client.remove_object(self.bucket, _checked(key))

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """S3's "no such key" as ImageMissing; any other failure as ImageStoreUnavailable."""
        import urllib3
        from minio.error import S3Error

        try:
            yield
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise ImageMissing(f"no such image in bucket {self.bucket}") from None
            raise ImageStoreUnavailable(
                f"the image store could not {action} (S3 {error.code})"
            ) from error
        except (OSError, urllib3.exceptions.HTTPError) as error:
            raise ImageStoreUnavailable(
                f"the image store could not {action} ({type(error).__name__})"
            ) from error
