"""The e-mail parser on its own: what real mail becomes, and hostile mail refused within limits."""

import asyncio
import time

import pytest

from orchestrator.services.email_intake import (
    EmailLimits,
    EmailTooComplex,
    MalformedEmail,
    parse_email,
    precheck,
)
from orchestrator.services.email_parsers import EmailParsers
from tests.utils import mail

UNLIMITED = EmailLimits(
    max_depth=100_000,
    max_parts=100_000,
    max_header_bytes=10**8,
    max_headers=10**6,
    max_encoded_words=10**8,
)


def test_a_subject_only_mail_becomes_a_ticket_with_the_subject_as_body():
    parsed = parse_email(mail.subject_only())
    assert parsed.sender == "dana@example.com"
    assert parsed.subject == parsed.body == "Please call me back about my card"


def test_an_attachment_only_mail_lists_the_attachment():
    parsed = parse_email(mail.attachment_only())
    assert parsed.sender == "eve@example.com" and parsed.body == "Statement attached"
    assert [a.as_dict() for a in parsed.attachments] == [
        {"filename": "statement.pdf", "content_type": "application/pdf", "size": 230}
    ]


def test_nested_multipart_takes_the_plain_text_and_lists_the_rest():
    parsed = parse_email(mail.nested_multipart())
    assert parsed.body == "My card was declined at the shop today."
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("receipt.png", "image/png")
    ]
    assert parsed.attachments[0].size == 108


def test_a_mail_that_is_only_a_quote_falls_back_to_its_subject():
    parsed = parse_email(b"From: someone@example.com\nSubject: empty\n\n> only a quote\n")
    assert parsed.body == "empty"


def test_the_sender_falls_back_to_sender_and_reply_to():
    raw = b"From: MAILER DAEMON <>\nReply-To: Gus <gus@example.com>\nSubject: s\n\ntext\n"
    assert parse_email(raw).sender == "gus@example.com"


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \n", b"Subject: no sender\n\nbody text", b"From: foo\nSubject: local only\n\nhi\n"],
)
def test_mail_without_a_sender_address_is_refused(raw):
    with pytest.raises(MalformedEmail) as caught:
        parse_email(raw)
    assert caught.value.code == "malformed_email"


@pytest.mark.parametrize("name", sorted(mail.HOSTILE))
def test_hostile_mail_is_refused_fast_by_the_prechecks(name):
    raw = mail.HOSTILE[name]()
    started = time.perf_counter()
    with pytest.raises(EmailTooComplex) as caught:
        parse_email(raw)
    assert time.perf_counter() - started < 1.0, "the precheck must refuse it before parsing"
    assert caught.value.code == "email_too_complex"


@pytest.mark.parametrize(
    ("raw", "limits", "expected"),
    [
        (b"From: a@example.com\nX: 1\nY: 2\n\nhi", EmailLimits(max_headers=2), "header fields"),
        (mail.encoded_subject(2000), EmailLimits(max_encoded_words=10), "encoded words"),
        (mail.nested_mime(5, 5), EmailLimits(max_parts=4), "MIME boundaries"),
        (mail.flat_parts(30), EmailLimits(max_parts=5), "lines starting with --"),
        (b"From: a@example.com\nX: " + b"y" * 2000 + b"\n\nhi", EmailLimits(max_header_bytes=1024),
         "header section"),
    ],
)  # fmt: skip
def test_each_precheck_names_its_limit(raw, limits, expected):
    with pytest.raises(EmailTooComplex, match=expected):
        precheck(raw, limits)


def test_the_real_tree_is_measured_against_depth_and_part_limits():
    with pytest.raises(EmailTooComplex, match="nested deeper than 3"):
        parse_email(mail.nested_mime(5, 5), EmailLimits(max_depth=3))
    with pytest.raises(EmailTooComplex, match="more than 3 MIME parts"):
        parse_email(mail.nested_multipart(), EmailLimits(max_parts=3))


def test_a_recursion_error_inside_the_parser_is_too_complex_not_a_crash():
    with pytest.raises(EmailTooComplex, match="nested too deeply"):
        parse_email(mail.nested_comments(), UNLIMITED)


def test_the_worker_process_is_killed_at_the_time_cap_and_replaced():
    async def scenario():
        parsers = EmailParsers(UNLIMITED, workers=1, timeout_s=1.0)
        try:
            started = time.perf_counter()
            with pytest.raises(EmailTooComplex, match=r"longer than the 1 s limit"):
                await parsers.parse(mail.encoded_subject())  # about 10 s of parsing
            assert time.perf_counter() - started < 5
            assert not parsers._idle  # the busy worker was killed, not kept
            parsed = await parsers.parse(mail.subject_only())  # a fresh worker serves
            assert parsed.sender == "dana@example.com"
            with pytest.raises(EmailTooComplex):
                await parsers.parse(mail.nested_mime(1100, lines=100))
        finally:
            parsers.close()

    asyncio.run(scenario())


def test_an_attachment_without_subject_or_text_still_becomes_a_ticket():
    parsed = parse_email(b"From: x@example.com\nContent-Type: image/png\n\n\x89PNG")
    assert (parsed.subject, parsed.body) == ("(no subject)", "(no text)")
    assert [a.as_dict() for a in parsed.attachments] == [
        {"filename": None, "content_type": "image/png", "size": 4}
    ]
