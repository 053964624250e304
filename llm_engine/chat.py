"""Chat templates: the model's own Jinja template applied to OpenAI-style messages.

A last assistant message marked `"prefix": true` is the start of the reply (a "prefix
completion", as some OpenAI-compatible servers call it): the model continues it instead of
starting a new turn, and only the continuation is returned.
"""

import json
from functools import lru_cache

from jinja2.sandbox import ImmutableSandboxedEnvironment

ROLES = ("system", "user", "assistant")


def parse_messages(raw: str | bytes) -> list[dict]:
    """Messages as JSON ([{"role", "content"}, ...]); a clear ValueError for anything else."""
    try:
        messages = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"messages are not valid JSON: {error}") from None
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty JSON list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{i}].content must be a string")
    prefix = messages[-1].get("prefix", False)
    if prefix is not False and (prefix is not True or messages[-1]["role"] != "assistant"):
        raise ValueError("only the last message, an assistant's, may be a prefix (true)")
    if any("prefix" in m for m in messages[:-1]):
        raise ValueError("only the last message may be a prefix")
    parsed = [{"role": m["role"], "content": m["content"]} for m in messages]
    if prefix:
        parsed[-1]["prefix"] = True
    return parsed


@lru_cache(maxsize=8)
def _compiled(template: str):
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise
    return environment.from_string(template)


def _raise(message: str):
    raise ValueError(message)


def render_chat_template(template: str, messages: list[dict]) -> str:
    if messages[-1].get("prefix"):
        opened = _compiled(template).render(messages=messages[:-1], add_generation_prompt=True)
        return opened + messages[-1]["content"]
    return _compiled(template).render(messages=messages, add_generation_prompt=True)
