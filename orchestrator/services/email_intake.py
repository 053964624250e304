"""Turning a raw RFC 822 message into a ticket: subject, sender and the customer's own words.

Quoted replies ("On ... wrote:" and `>` lines) and signatures (after "-- " and the usual
phone and sign-off lines) are cut; an HTML-only message is converted to text.
"""

import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

QUOTE_HEADER = re.compile(r"^\s*(On .+wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+)\s*$", re.I)
SIGNATURE_START = re.compile(r"^(-- ?|__+|Sent from my .+|Get Outlook for .+)$", re.I)


class MalformedEmail(ValueError):
    pass


@dataclass(frozen=True)
class ParsedEmail:
    subject: str
    sender: str
    body: str
    message_id: str | None


def parse_email(raw: bytes) -> ParsedEmail:
    if not raw.strip():
        raise MalformedEmail("the body is empty; send the raw RFC 822 message")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.defects and not message.keys():
        raise MalformedEmail(f"not an RFC 822 message: {message.defects[0]}")
    sender = _sender(message)
    text = _customer_text(_body_text(message))
    if not text:
        raise MalformedEmail("the message has no text once quotes and signatures are removed")
    subject = " ".join(str(message.get("subject", "")).split()) or text.splitlines()[0][:120]
    message_id = str(message["message-id"]).strip() if message["message-id"] else None
    return ParsedEmail(subject[:500], sender, text[:20_000], message_id)


def _sender(message: EmailMessage) -> str:
    try:
        addresses: tuple[Address, ...] = message["from"].addresses if message["from"] else ()
    except (AttributeError, IndexError, ValueError):
        addresses = ()
    if not addresses or "@" not in addresses[0].addr_spec:
        raise MalformedEmail("the message has no valid From address")
    return addresses[0].addr_spec


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        raise MalformedEmail("the message has no text/plain or text/html part")
    try:
        content = part.get_content()
    except (LookupError, ValueError) as error:
        raise MalformedEmail(f"the body cannot be decoded: {error}") from None
    if not isinstance(content, str):
        raise MalformedEmail("the message body is not text")
    return html_to_text(content) if part.get_content_subtype() == "html" else content


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
