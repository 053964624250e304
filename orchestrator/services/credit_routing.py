"""Which credit version scores a call's applicants, as the x-ray's routing does for images
(services/xray_routing.py): production keys send the canary a stable share of calls, chosen by
a hash of the applicants' fields, so that the same applicants sent again meet the same version
while the rollout stands; staging keys meet the canary, else the newest candidate. A version
other than production that cannot answer is answered by production; the canary's watch
records each call's outcome. A call's applicants (up to 1,000) meet one version together."""

import hashlib

import numpy as np

from contracts.credit import CREDIT_ENSEMBLE
from orchestrator.services.canary import CanaryWatch, watched_call
from orchestrator.services.versions import VersionStore, choose_version
from orchestrator.triton.credit_client import CreditAnswer, CreditClient


async def score_routed(
    client: CreditClient,
    fields: np.ndarray,
    environment: str,
    versions: VersionStore,
    watch: CanaryWatch | None = None,
) -> CreditAnswer:
    """The answer of the version routing picks for `fields` and the caller's environment.
    Raises TritonRejected (an applicant out of range) or TritonUnavailable."""
    routing = await versions.routing(CREDIT_ENSEMBLE)
    key = hashlib.sha256(np.ascontiguousarray(fields, dtype=np.int64).tobytes()).hexdigest()
    version = choose_version(key, environment, routing)

    def call(v: int):
        return client.score(fields, v)

    return await watched_call(call, version, routing.production, CREDIT_ENSEMBLE, watch)
