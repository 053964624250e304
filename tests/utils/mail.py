"""Messages for e-mail intake tests: customers' odd but real mail, and hostile mail."""

from email.message import EmailMessage
from pathlib import Path

# CPython's own e-mail test corpus, where this machine's Python installations ship it.
CORPUS_GLOBS = (
    "/usr/lib/python3*/test/test_email/data",
    "/usr/local/lib/python3*/test/test_email/data",
    "/root/.pyenv/versions/3.11*/lib/python3.11/test/test_email/data",
    "/root/.pyenv/versions/*/lib/python3*/test/test_email/data",
)


def corpus_folder() -> Path | None:
    for pattern in CORPUS_GLOBS:
        for folder in sorted(Path("/").glob(pattern.lstrip("/"))):
            if sorted(folder.glob("msg_*.txt")):
                return folder
    return None


def subject_only() -> bytes:
    return b"From: dana@example.com\nSubject: Please call me back about my card\n\n"


def attachment_only() -> bytes:
    message = EmailMessage()
    message["From"] = "Eve <eve@example.com>"
    message["Subject"] = "Statement attached"
    message["Message-ID"] = "<attachment-only@example.com>"
    message.add_attachment(
        b"%PDF-1.4 fake statement" * 10,
        maintype="application",
        subtype="pdf",
        filename="statement.pdf",
    )
    return bytes(message)


def nested_multipart() -> bytes:
    """Text and HTML alternatives inside a mixed part, a photo, and a forwarded message."""
    message = EmailMessage()
    message["From"] = "frank@example.com"
    message["Subject"] = "Card declined"
    message["Message-ID"] = "<nested@example.com>"
    message.set_content("My card was declined at the shop today.")
    message.add_alternative("<p>My card was <b>declined</b> at the shop today.</p>", subtype="html")
    message.make_mixed()
    message.add_attachment(b"\x89PNG\r\n\x1a\n" + b"0" * 100, maintype="image", subtype="png",
                           filename="receipt.png")  # fmt: skip
    forwarded = EmailMessage()
    forwarded["From"] = "shop@example.org"
    forwarded["Subject"] = "Payment failed"
    forwarded.set_content("Your payment failed.")
    message.add_attachment(forwarded)
    return bytes(message)


# Hostile mail, as found against the running stack.
def encoded_subject(size: int = 280_000) -> bytes:
    words = b" ".join([b"=?utf-8?q?a?="] * (size // 14))
    return b"From: a@example.com\nSubject: " + words + b"\n\nhello\n"


def nested_mime(depth: int, lines: int = 12_000) -> bytes:
    parts = [
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d' % (n, n) for n in range(depth)
    ]
    text = b"Content-Type: text/plain\n\n" + b"\n".join([b"x"] * lines)
    closing = b"\n".join(b"--b%d--" % n for n in reversed(range(depth)))
    head = b"From: a@example.com\nSubject: nested\n"
    return head + b"\n".join(parts) + b"\n" + text + b"\n" + closing + b"\n"


def nested_comments(count: int = 3000) -> bytes:
    return b"From: " + b"(" * count + b")" * count + b" a@example.com\nSubject: hi\n\nhello\n"


def flat_parts(count: int = 120_000) -> bytes:
    """One multipart with very many parts: about a minute of parsing, but one boundary."""
    head = b'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
    return head + b"--b\n\nx\n" * count + b"--b--\n"


HOSTILE = {
    "280 KB of encoded words in Subject": encoded_subject,
    "MIME nested 700 deep, 12,000 lines": lambda: nested_mime(700),
    "MIME nested 1,100 deep": lambda: nested_mime(1100, lines=100),
    "From with 3,000 nested comments": nested_comments,
    "120,000 parts in one multipart": flat_parts,
}
