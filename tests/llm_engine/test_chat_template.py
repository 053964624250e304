import json

import pytest

from llm_engine.chat import parse_messages, render_chat_template

# A ChatML template like SmolLM2's, small enough to read in the assertions.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _render(messages: list[dict]) -> str:
    return render_chat_template(CHATML, parse_messages(json.dumps(messages)))


def test_a_new_turn_follows_the_messages():
    prompt = _render([{"role": "user", "content": "Hi"}])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_a_prefix_is_continued_not_closed():
    prompt = _render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Thank you for", "prefix": True},
        ]
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nThank you for"
    # without the flag, an assistant message is a finished turn and a new one starts
    closed = _render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    assert closed.endswith("Yo<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Hi", "prefix": True}],
        [{"role": "assistant", "content": "A", "prefix": "yes"}],
        [
            {"role": "assistant", "content": "A", "prefix": True},
            {"role": "user", "content": "B"},
        ],
    ],
)
def test_a_misplaced_prefix_is_refused(messages):
    with pytest.raises(ValueError, match="prefix"):
        parse_messages(json.dumps(messages))
