"""Request parameters every router shares: ids in paths, queries and headers, bounded like body ids.

One definition, so that no route can take an id the database cannot hold (see schemas.common).
"""

from typing import Annotated

from fastapi import Header, Path, Query

from orchestrator.schemas.common import ID_BOUNDS, MAX_ID

__all__ = ["MAX_ID", "IdPath", "IdQuery", "TenantIdHeader"]

IdPath = Annotated[int, Path(**ID_BOUNDS)]
IdQuery = Annotated[int, Query(**ID_BOUNDS)]
TenantIdHeader = Annotated[
    int,
    Header(alias="X-Tenant-Id", description="The tenant whose secret signed the body", **ID_BOUNDS),
]
