"""An S3 endpoint in process (moto's server) for the MinIO image store's tests: the MinIO
client speaks the S3 protocol over HTTP to it, as it does to MinIO."""

import contextlib
from collections.abc import Iterator

from contracts.image_store import ImageStoreSettings


class S3Endpoint:
    """A fresh S3 endpoint on loopback: `address` is its host:port; stop() takes it down."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.address, self._running = f"{host}:{port}", True

    def stop(self) -> None:
        if self._running:
            self._server.stop()
            self._running = False


@contextlib.contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = S3Endpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def s3_settings(endpoint: str, bucket: str = "xrays", **extra) -> ImageStoreSettings:
    fields = {
        "kind": "s3",
        "s3_endpoint": endpoint,
        "s3_bucket": bucket,
        "s3_access_key": "test-access",
        "s3_secret_key": "test-secret",
        "s3_timeout_s": 2,
    }
    return ImageStoreSettings(**(fields | extra))


def s3_env(endpoint: str, bucket: str = "xrays") -> dict[str, str]:
    """The same settings as an orchestrator process reads them."""
    return {
        "IMAGE_STORE_KIND": "s3",
        "IMAGE_STORE_S3_ENDPOINT": endpoint,
        "IMAGE_STORE_S3_BUCKET": bucket,
        "IMAGE_STORE_S3_ACCESS_KEY": "test-access",
        "IMAGE_STORE_S3_SECRET_KEY": "test-secret",
        "IMAGE_STORE_S3_TIMEOUT_S": "2",
    }
