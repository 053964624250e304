"""Types the schemas share: ids that fit the database, bounded JSON metadata.

An id past the key columns' range names no row, but the database drivers raise on it instead of
finding nothing (PostgreSQL binds the value as the column's 32-bit INTEGER and answers
NumericValueOutOfRange; SQLite raises OverflowError past 64 bits); bounding ids at the door turns
that into a 422 naming the field.
"""

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_ID = 2**31 - 1  # the id columns are INTEGER: 32 bits on PostgreSQL
ID_BOUNDS: dict[str, int] = {"ge": 1, "le": MAX_ID}  # Field, Path, Query and Header take these

IdField = Annotated[int, Field(**ID_BOUNDS)]  # an id in a request body; api.params has the rest

# Metadata is the caller's own JSON, stored and handed back as given. Bounded so that it stays
# cheap to store and to serialise on every read (pydantic's serialiser gives up near 250 levels,
# which made a ticket unreadable once a deeply nested one had been stored).
MAX_METADATA_DEPTH = 8  # {"a": 1} is depth 1
MAX_METADATA_ENTRIES = 256  # keys and list items, all levels together
MAX_METADATA_BYTES = 16_384  # as compact JSON, UTF-8


def metadata_problem(value: Any) -> str | None:
    """Why `value` is over the metadata limits, or None when it is within them.

    Walks with an explicit stack, so that a hostile depth cannot exhaust Python's.
    """
    entries, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            if depth > MAX_METADATA_DEPTH:
                return f"nested deeper than {MAX_METADATA_DEPTH} levels"
            children = list(node.values()) if isinstance(node, dict) else node
            entries += len(children)
            if entries > MAX_METADATA_ENTRIES:
                return f"more than {MAX_METADATA_ENTRIES} keys and items"
            stack.extend((child, depth) for child in children)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        return f"{size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
    return None


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    problem = metadata_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_check_metadata),
    Field(
        description=f"Your own JSON object, kept with the ticket: at most {MAX_METADATA_DEPTH} "
        f"levels deep, {MAX_METADATA_ENTRIES} keys and items, {MAX_METADATA_BYTES} bytes"
    ),
]
