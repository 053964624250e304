"""Turning a raw RFC 822 message into a ticket: subject, sender, the customer's words, attachments.

Quoted replies ("On ... wrote:" and `>` lines) and signatures (after "-- " and the usual
phone and sign-off lines) are cut; an HTML-only message is converted to text.

A help desk does not bounce its customers: any message with a sender address becomes a ticket.
The subject stands in for an empty body, and parts that are not the body are listed as
attachments (name, type, size). Only a message without a usable sender, or one over the
limits below, is refused.

Python's e-mail parser is quadratic or recursive on some input (thousands of encoded words in
one header, MIME nested hundreds deep, deeply nested comments in an address), so `precheck`
refuses such input by cheap scans of the raw bytes before anything is parsed, the parse runs in
a separate process under a time cap (services/email_parsers.py), and `parse_email` measures
the real tree against the limits before it reads any part.
"""

import codecs
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from orchestrator.schemas.tickets import EMAIL_PATTERN

QUOTE_HEADER = re.compile(r"^\s*(On .+wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+)\s*$", re.I)
SIGNATURE_START = re.compile(r"^(-- ?|__+|Sent from my .+|Get Outlook for .+)$", re.I)
VALID_ADDRESS = re.compile(EMAIL_PATTERN)
SENDER_HEADERS = ("from", "sender", "reply-to")
AUTOMATION_HEADERS = (
    "auto-submitted", "x-autoreply", "x-autorespond", "precedence", "list-id",
    "list-unsubscribe", "x-spam-flag", "content-type",
)  # fmt: skip
MAX_SUBJECT, MAX_BODY, MAX_FILENAME = 500, 20_000, 200
DELIMITER_SLACK = 5  # lines starting with "--" allowed per MIME part


class MalformedEmail(ValueError):
    """The message cannot become a ticket; the text says why."""

    code = "malformed_email"


class EmailTooComplex(MalformedEmail):
    """The message is over one of the parsing limits."""

    code = "email_too_complex"


@dataclass(frozen=True)
class EmailLimits:
    max_depth: int = 20  # MIME nesting levels
    max_parts: int = 200  # MIME parts in the whole message
    max_header_bytes: int = 64 * 1024  # the top-level header section
    max_headers: int = 500  # header fields in the top-level header section
    max_encoded_words: int = 1000  # RFC 2047 `=?charset?q?...?=` words in the whole message


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int  # decoded bytes

    def as_dict(self) -> dict:
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size}


@dataclass(frozen=True)
class ParsedEmail:
    subject: str
    sender: str
    body: str
    message_id: str | None
    attachments: tuple[Attachment, ...] = field(default=())
    # The header fields that tell an auto-reply or bulk mail (services/ticket_signals)
    headers: dict[str, str] = field(default_factory=dict)


def precheck(raw: bytes, limits: EmailLimits) -> None:
    """Refuse input that would make the parser slow or recursive, with C-speed byte scans only
    (the server runs this on its event loop: a few milliseconds per megabyte)."""
    if not raw or raw.isspace():
        raise MalformedEmail("the body is empty; send the raw RFC 822 message")
    ends = [at for at in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if at >= 0]
    header = raw[: min(ends)] if ends else raw
    if len(header) > limits.max_header_bytes:
        raise EmailTooComplex(
            f"the header section is {len(header)} bytes; the limit is {limits.max_header_bytes}"
        )
    # A field starts every line that is not a folded continuation.
    fields = header.count(b"\n") + 1 - header.count(b"\n ") - header.count(b"\n\t")
    _at_most(fields, limits.max_headers, "header fields")
    # Every encoded word opens with "=?"; counting the openers bounds them from above.
    _at_most(raw.count(b"=?"), limits.max_encoded_words, "encoded words (=?...?=)")
    # Every multipart part declares a boundary: this bounds both nesting and part count.
    _at_most(raw.lower().count(b"boundary"), limits.max_parts, "MIME boundaries")
    # Every part starts at a delimiter line ("--boundary"); parsing costs about 0.2 ms a part.
    # The slack keeps text with the odd line of dashes (tables, signatures) from a refusal.
    _at_most(raw.count(b"\n--"), DELIMITER_SLACK * limits.max_parts, "lines starting with --")


def _at_most(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise EmailTooComplex(f"the message has more than {limit} {what}")


def parse_email(raw: bytes, limits: EmailLimits | None = None) -> ParsedEmail:
    """The ticket's fields from a raw message; MalformedEmail (or EmailTooComplex) otherwise."""
    limits = limits or EmailLimits()
    precheck(raw, limits)
    try:
        return _parse(raw, limits)
    except RecursionError:
        raise EmailTooComplex("the message is nested too deeply to parse") from None


def _parse(raw: bytes, limits: EmailLimits) -> ParsedEmail:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.defects and not message.keys():
        raise MalformedEmail(f"not an RFC 822 message: {message.defects[0]!r}")
    sender = _sender(message)
    leaves = _leaves(message, limits)
    text, attachments = _split_body(leaves)
    stated = _header_text(message, "subject")
    subject = stated or (text.splitlines()[0][:120] if text else "") or "(no subject)"
    body = text or stated or "(no text)"
    return ParsedEmail(
        subject=subject[:MAX_SUBJECT],
        sender=sender,
        body=body[:MAX_BODY],
        message_id=_header_text(message, "message-id") or None,
        attachments=tuple(attachments),
        headers=_automation_headers(message),
    )


def _automation_headers(message: EmailMessage) -> dict[str, str]:
    found = {name: _header_text(message, name) for name in AUTOMATION_HEADERS}
    return {name: value[:200] for name, value in found.items() if value}


def _no_nul(text: str) -> str:
    # PostgreSQL's text type cannot hold NUL; an encoded word or an 8-bit body can carry one.
    return text.replace("\x00", "")


def _header_text(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        return " ".join(_no_nul(str(value)).split()) if value is not None else ""
    except (LookupError, ValueError, TypeError, AttributeError, IndexError):
        return ""


def _sender(message: EmailMessage) -> str:
    """The first valid address of From, else Sender, else Reply-To."""
    for name in SENDER_HEADERS:
        for header in message.get_all(name) or ():
            for address in getattr(header, "addresses", ()):
                spec = address.addr_spec
                if len(spec) <= 320 and "\x00" not in spec and VALID_ADDRESS.match(spec):
                    return spec
    raise MalformedEmail("the message has no valid sender address (From, Sender or Reply-To)")


def _leaves(message: EmailMessage, limits: EmailLimits) -> list[EmailMessage]:
    """The parts that carry content, in document order; walked without recursion."""
    leaves: list[EmailMessage] = []
    stack: list[tuple[EmailMessage, int]] = [(message, 1)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if depth > limits.max_depth:
            raise EmailTooComplex(f"MIME parts nested deeper than {limits.max_depth} levels")
        if seen > limits.max_parts:
            raise EmailTooComplex(f"the message has more than {limits.max_parts} MIME parts")
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in reversed(children))
        else:
            leaves.append(part)
    return leaves


def _split_body(leaves: list[EmailMessage]) -> tuple[str, list[Attachment]]:
    """The customer's text (plain preferred over HTML) and every other part as an attachment."""
    texts: dict[str, str] = {}
    attachments: list[Attachment] = []
    for part in leaves:
        kind = _text_kind(part)
        if kind is None:
            attachments.append(_attachment(part))
            continue
        if kind in texts:
            continue
        content = _decoded_text(part)
        text = _customer_text(html_to_text(content) if kind == "html" else content)
        if text:
            texts[kind] = text
    return texts.get("plain") or texts.get("html") or "", attachments


def _text_kind(part: EmailMessage) -> str | None:
    """ "plain" or "html" for a part that is the message's text; None for an attachment."""
    if part.get_content_disposition() == "attachment":
        return None
    maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
    if maintype == "text":
        return "html" if subtype == "html" else "plain" if subtype == "plain" else None
    # A multipart without a usable boundary arrives as one text leaf (a defect, not a bounce).
    return "plain" if maintype == "multipart" else None


def _payload_bytes(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _decoded_text(part: EmailMessage) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return _no_nul(_payload_bytes(part).decode(charset, errors="replace"))


def _attachment(part: EmailMessage) -> Attachment:
    try:
        filename = part.get_filename()
    except (LookupError, ValueError, TypeError):
        filename = None
    if filename is not None:
        filename = " ".join(_no_nul(str(filename)).split())[:MAX_FILENAME] or None
    return Attachment(filename, part.get_content_type(), len(_payload_bytes(part)))


def _customer_text(text: str) -> str:
    """The new part of the message: everything before a quote header or a signature."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.rstrip()
        if QUOTE_HEADER.match(stripped) or SIGNATURE_START.match(stripped):
            break
        if stripped.lstrip().startswith(">"):
            continue
        kept.append(stripped)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


class _TextExtractor(HTMLParser):
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})
    SKIPPED = frozenset({"script", "style", "head", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, _attrs):
        if tag in self.SKIPPED:
            self.skipping += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIPPED and self.skipping:
            self.skipping -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))  # in HTML a newline is a space


def html_to_text(html: str) -> str:
    """Visible text of an HTML mail, blocks on their own lines; quoted blockquotes dropped."""
    extractor = _TextExtractor()
    extractor.feed(html)
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
