"""Reading OpenAI-style server-sent events, line by line (sync or async callers alike)."""

DONE = "[DONE]"


def sse_data(line: str | None) -> str | None:
    """The payload of a `data:` line, stripped; None for any other line (events, comments)."""
    if not line or not line.startswith("data:"):
        return None
    return line[5:].strip()


def delta_text(chunk: dict) -> str:
    """The text a `chat.completion.chunk` adds, over all of its choices."""
    return "".join(
        (choice.get("delta") or {}).get("content") or "" for choice in chunk.get("choices") or []
    )
