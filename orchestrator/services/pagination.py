"""Cursor pagination, newest first: the cursor names the last id seen, so pages stay stable
while rows are added."""

import base64

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from orchestrator.errors import InvalidInput
from orchestrator.schemas.common import MAX_ID


def page(
    session: Session,
    query: Select,
    id_column: InstrumentedAttribute,
    limit: int,
    cursor: str | None,
) -> tuple[list, str | None]:
    """Up to `limit` rows of `query` after `cursor`, and the cursor of the next page (or None).

    Rows are what `session.execute` returns; for a one-entity query, the entities themselves.
    """
    if cursor is not None:
        query = query.where(id_column < decode_cursor(cursor))
    one_entity = len(query.column_descriptions) == 1
    result = session.execute(query.order_by(id_column.desc()).limit(limit + 1))
    rows = list(result.scalars() if one_entity else result)
    more, rows = len(rows) > limit, rows[:limit]
    if not more:
        return rows, None
    last = rows[-1] if one_entity else rows[-1][0]
    return rows, encode_cursor(last.id)


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"t:{row_id}".encode()).decode().rstrip("=")


MAX_CURSOR_CHARS = 64  # "t:" and a 19-digit id, base64: 28 characters


def decode_cursor(cursor: str) -> int:
    """The id a cursor names; anything encode_cursor could not have written is a 422.

    Bounded before decoding (a megabyte of base64 is no cursor), and the id within BIGINT's
    range: a larger one would reach the database driver, which raises instead of matching nothing.
    """
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "t" or not value.isascii() or not value.isdigit():
            raise ValueError(kind)
        row_id = int(value)
        if not 1 <= row_id <= MAX_ID:
            raise ValueError(value)
        return row_id
    except ValueError:
        raise InvalidInput("cursor is not one this API gave out", param="cursor") from None
