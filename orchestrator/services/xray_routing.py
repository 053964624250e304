"""Which x-ray version answers an image, as triage's routing does for texts
(services/triage.py): production keys send the canary a stable share of images, chosen by a
hash of the image's bytes, so that the same image sent twice meets the same version while the
rollout stands; staging keys meet the canary, else the newest candidate. A version other than
production that cannot answer is answered by production; the canary's watch records each
call's outcome."""

import hashlib

from contracts.xray import XRAY_ENSEMBLE
from orchestrator.services.canary import CanaryWatch, watched_call
from orchestrator.services.versions import VersionStore, choose_version
from orchestrator.triton.xray_client import XrayAnswer, XrayClient


async def diagnose_routed(
    client: XrayClient,
    image: bytes,
    environment: str,
    versions: VersionStore,
    watch: CanaryWatch | None = None,
) -> XrayAnswer:
    """The answer of the version routing picks for `image` and the caller's environment.
    Raises TritonRejected (a bad image) or TritonUnavailable."""
    routing = await versions.routing(XRAY_ENSEMBLE)
    version = choose_version(hashlib.sha256(image).hexdigest(), environment, routing)

    def call(v: int):
        return client.diagnose(image, v)

    return await watched_call(call, version, routing.production, XRAY_ENSEMBLE, watch)
