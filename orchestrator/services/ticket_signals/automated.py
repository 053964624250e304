"""Messages that need no human: auto-replies (out of office, delivery failures) and bulk mail
(newsletters, mailing lists, messages a spam filter marked). Such tickets are stored, flagged
and settled at once: nobody is asked to read them, no draft is written, and they do not wait
in the queue.

From the e-mail's headers where there are any (RFC 3834's `Auto-Submitted`, the de-facto
`X-Autoreply`/`X-Autorespond`, `Precedence`, `List-Id`/`List-Unsubscribe`, a spam filter's
`X-Spam-Flag`, delivery reports' `multipart/report`, a mailer daemon as sender), and from the
wording of the subject and the text's start in English, German, French, Spanish, Italian,
Portuguese and Dutch (out-of-office and delivery-failure phrases) for every channel.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Phrases an automated message opens with, and a customer writing about one does not:
# "auto-reply" and a bounce's words only as a subject's prefix ("Auto-Reply: ...",
# "Undeliverable: ..."), being away only with its "until" or as a subject of its own ("Out of
# Office"), since a customer may ask how to set one up or mention being out tomorrow. The
# same in each language: its "until" after the phrase (German puts it before: "bis zum 2.
# Januar nicht im Büro"), a colon, or the line's end.
_AWAY = r"(\s+{until}|\s*:|\s*$)"
AUTO_REPLY_PHRASES = (
    r"out of (the )?office( until|\s*:|\s*$)", r"automatic reply\s*:", r"auto[- ]?reply:",
    r"autoreply:", r"away from (the|my) (office|desk) until", r"on (annual )?leave until",
    r"delivery status notification", r"undeliverable:", r"mail delivery (failed|failure)",
    r"returned mail:", r"delivery has failed",
    r"abwesenheitsnotiz", r"automatische antwort\s*:", r"unzustellbar:",
    r"\bbis\b[^\n]{0,40}\b(nicht im büro|außer haus)",
    r"(nicht im büro|außer haus)" + _AWAY.format(until="bis"),
    r"absente? du bureau" + _AWAY.format(until="jusqu"), r"réponse automatique\s*:",
    r"message d'absence", r"non remis ?:",
    r"fuera de la oficina" + _AWAY.format(until="hasta"), r"respuesta automática\s*:",
    r"ausente hasta",
    r"fuori ufficio" + _AWAY.format(until="fino"), r"risposta automatica\s*:", r"assente fino",
    r"fora do escritório" + _AWAY.format(until="até"), r"resposta automática\s*:",
    r"ausente até",
    r"automatisch antwoord\s*:", r"niet op kantoor" + _AWAY.format(until="tot"),
)  # fmt: skip
AUTO_REPLY_WORDING = re.compile("|".join(AUTO_REPLY_PHRASES), re.IGNORECASE | re.MULTILINE)
WORDING_WINDOW = 300  # characters of the text read for the wording: the phrase opens a message
MAILER_DAEMONS = re.compile(r"^(mailer-daemon|postmaster)@", re.IGNORECASE)


@dataclass(frozen=True)
class Automation:
    auto_reply: bool = False
    spam: bool = False
    reasons: list[str] = field(default_factory=list)  # what flagged it, for the agent's eye


def automation_of(
    subject: str, body: str, headers: Mapping[str, str] | None = None, sender: str | None = None
) -> Automation:
    """Whether the message is an auto-reply or bulk mail, and why. `headers`: the e-mail's
    top-level header fields, names in lower case (None for other channels)."""
    headers = headers or {}
    auto, bulk = _auto_reply_reasons(headers, sender), _bulk_reasons(headers)
    opening = f"{subject}\n{body[:WORDING_WINDOW]}"
    if (found := AUTO_REPLY_WORDING.search(opening)) is not None:
        auto.append(f"wording: {found.group(0)!r}")
    return Automation(auto_reply=bool(auto), spam=bool(bulk), reasons=auto + bulk)


def _auto_reply_reasons(headers: Mapping[str, str], sender: str | None) -> list[str]:
    reasons = []
    submitted = headers.get("auto-submitted", "").strip().lower()
    if submitted and submitted != "no":  # RFC 3834: "no" is a human's message
        reasons.append(f"Auto-Submitted: {submitted}")
    for name in ("x-autoreply", "x-autorespond"):
        if name in headers:
            reasons.append(f"{name}: {headers[name]}")
    if headers.get("precedence", "").strip().lower() == "auto_reply":
        reasons.append("Precedence: auto_reply")
    if headers.get("content-type", "").lower().startswith("multipart/report"):
        reasons.append("a delivery report (multipart/report)")
    if sender and MAILER_DAEMONS.match(sender):
        reasons.append(f"sent by {sender}")
    return reasons


def _bulk_reasons(headers: Mapping[str, str]) -> list[str]:
    reasons = []
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "junk", "list"):
        reasons.append(f"Precedence: {precedence}")
    for name in ("list-id", "list-unsubscribe"):
        if name in headers:
            reasons.append(f"a mailing list ({name})")
    if headers.get("x-spam-flag", "").strip().lower() == "yes":
        reasons.append("X-Spam-Flag: YES")
    return reasons
