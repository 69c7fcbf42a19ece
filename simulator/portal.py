"""The pages a simulated site serves: a portal front page, its news-front-page twin, a defacement.

Tamper detection compares the text of pages over time, so the healthy page has to
look like a real government portal (a few hundred words: navigation, e-services,
news, a footer), be stable from request to request, and carry the target's
expected text. `rotating` is the benign twin of a defacement: the same portal with
parts that change on every request, as a news front page does. `defaced` is what
an attacker leaves behind: none of the portal's text, a boast, a foreign script.
"""

from __future__ import annotations

import datetime
import itertools
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape

# A host no simulated site uses: the defacer's script comes from elsewhere.
DEFACER_SCRIPT_URL = "https://cdn.defacer.test/x.js"
DEFACER_NAME = "Shadow Falcon Team"
ROTATING_HEADLINE_COUNT = 3

_SERVICES: tuple[tuple[str, str], ...] = (
    ("Personal documents", "Apply for an identity card or passport and follow the request online."),
    ("Civil registry", "Order birth, marriage and residence certificates with an electronic seal."),
    ("Taxes and fees", "Declare income, pay local taxes and download your payment history."),
    ("Business register", "Register a company, change its details and file annual statements."),
    ("Vehicles", "Register a vehicle, renew a driving licence and check outstanding fines."),
    ("Social benefits", "Apply for child allowance, pensions and unemployment support."),
    ("Health insurance", "Check your insurance status and choose or change your family doctor."),
    ("Property and cadastre", "Request a land registry extract and follow a building permit."),
)

# Fixed news on the healthy page: the portal's own announcements, stable for days.
_FIXED_NEWS: tuple[str, ...] = (
    "Scheduled maintenance of the electronic signature service on Saturday night between "
    "midnight and four in the morning; submitted requests are kept.",
    "Citizens can now receive certificates from the civil registry directly in their "
    "electronic mailbox without visiting an office.",
    "The helpdesk extends its opening hours during the tax declaration period until the "
    "end of the month.",
)

# A news front page's headlines: each request shows a different few (10-25 words each).
HEADLINE_POOL: tuple[str, ...] = (
    "Government approves a new digital strategy to bring every public service online "
    "by the end of next year",
    "Ministry of Finance publishes the quarterly budget report showing higher revenue "
    "from electronic tax payments",
    "Over two hundred thousand citizens used the electronic identity card to sign "
    "documents during the last month",
    "New opening hours for service centres in the capital start next Monday after "
    "consultation with local municipalities",
    "The cadastre agency completes the digitisation of land records in four more "
    "districts ahead of schedule",
    "Parliament committee reviews the draft law on cybersecurity and the protection of "
    "critical public infrastructure",
    "Students can now apply for scholarships online and follow every step of the "
    "evaluation from their own account",
    "Health insurance fund announces simpler reimbursement of medicines prescribed "
    "electronically by family doctors",
    "Regional development programme opens a call for small businesses investing in "
    "energy efficiency and digital tools",
    "National statistics office releases preliminary census results with an interactive "
    "map of population changes",
)

_BANNERS: tuple[str, ...] = (
    "Tax declarations are due by the 31st: file yours online in ten minutes.",
    "Beware of phishing: the portal never asks for your password by e-mail.",
    "New: book an appointment at any service centre from your phone.",
    "Rate our services: a two-minute survey helps us improve the portal.",
)


_HOW_IT_WORKS = (
    "<section id=how><h2>How it works</h2>"
    "<p>Sign in with your electronic identity card, a mobile signature or the username "
    "and password you received at a service centre. Choose a service, fill in the form "
    "and attach the documents it asks for; most fees can be paid by card in the same "
    "step. You will find every request, its status and the documents issued to you "
    "under My account, where they stay available for five years.</p>"
    "<p>If you need help, the guides under Help explain each service step by step, and "
    "the helpdesk answers by telephone, e-mail or chat during working hours.</p>"
    "</section>"
)


@dataclass(frozen=True, slots=True)
class PortalIdentity:
    """Who the portal is: `title` is the target's expected text and must stay on the page."""

    title: str
    host: str
    sector: str
    country: str  # the country's name, or "" for a canary


def _head(title: str, extra: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"{extra}</head>"
    )


def _nav() -> str:
    links = ("Home", "E-services", "Institutions", "News", "Open data", "Help", "Contact")
    items = "".join(f'<li><a href="/{link.lower()}">{link}</a></li>' for link in links)
    return f"<nav><ul>{items}</ul></nav>"


def _services() -> str:
    rows = "".join(
        f"<li><h3>{escape(name)}</h3><p>{escape(text)}</p></li>" for name, text in _SERVICES
    )
    return f"<section id=services><h2>Electronic services</h2><ul>{rows}</ul></section>"


def _news(items: Sequence[str], heading: str, section_id: str) -> str:
    rows = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f"<section id={section_id}><h2>{escape(heading)}</h2><ul>{rows}</ul></section>"


def _footer(identity: PortalIdentity) -> str:
    where = f" of {escape(identity.country)}" if identity.country else ""
    return (
        "<footer>"
        f"<p>{escape(identity.title)} is the official {escape(identity.sector)} portal{where}.</p>"
        "<p>Contact: citizen helpdesk, telephone +000 800 1234, open Monday to Friday "
        f"from 8:00 to 20:00; e-mail info@{escape(identity.host)}; postal address: "
        "Boulevard of Independence 1, Capital City.</p>"
        "<p>Accessibility statement. Privacy policy. Terms of use. Cookie settings.</p>"
        "</footer>"
    )


def _intro(identity: PortalIdentity) -> str:
    where = f" in {escape(identity.country)}" if identity.country else ""
    return (
        f"<header><h1>{escape(identity.title)}</h1>"
        f"<p>Welcome to the {escape(identity.sector)} portal{where}. Here you can use public "
        "services online, at any time, with your electronic identity, follow your requests "
        "and receive documents without queues.</p></header>"
    )


def _portal(identity: PortalIdentity, dynamic: str = "") -> bytes:
    title = f"{identity.title} | official portal"
    return (
        _head(title)
        + "<body>"
        + _nav()
        + _intro(identity)
        + dynamic
        + _services()
        + _news(_FIXED_NEWS, "Announcements", "news")
        + _HOW_IT_WORKS
        + _footer(identity)
        + "</body></html>\n"
    ).encode()


def healthy_page(identity: PortalIdentity) -> bytes:
    """The portal front page, the same on every request."""
    return _portal(identity)


def defaced_page() -> bytes:
    """An attacker's page: a boast, a foreign script, none of the portal's own text."""
    return (
        _head(f"Hacked by {DEFACER_NAME}", f'<script src="{DEFACER_SCRIPT_URL}"></script>')
        + "<body style='background:#000;color:#0f0'>"
        f"<h1>Hacked by {DEFACER_NAME}</h1>"
        "<p>Your security is a joke. We were here and nobody noticed.</p>"
        "<p>Greetings to all our brothers. Admin, patch your server next time.</p>"
        "<marquee>We are everywhere</marquee>"
        "</body></html>\n"
    ).encode()


@dataclass(slots=True)
class RotatingPortal:
    """The portal as a news front page: every call gives a different page.

    Each page picks the next few headlines from `HEADLINE_POOL`, shows the date and
    time, a fresh CSRF token and the next banner; the rest is the healthy page.
    """

    identity: PortalIdentity
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def page(self, now: datetime.datetime | None = None) -> bytes:
        turn = next(self._turn)
        moment = now or datetime.datetime.now(datetime.UTC)
        headlines = [
            HEADLINE_POOL[(turn + offset) % len(HEADLINE_POOL)]
            for offset in range(ROTATING_HEADLINE_COUNT)
        ]
        banner = _BANNERS[turn % len(_BANNERS)]
        token = secrets.token_hex(16)
        dynamic = (
            f"<div class=banner>{escape(banner)}</div>"
            f"<p class=today>Today is {moment:%A, %d %B %Y}, {moment:%H:%M:%S} UTC.</p>"
            f'<form action="/search"><input type=hidden name=csrf_token value="{token}">'
            f"<input name=q> <span class=session>session {token[:12]}</span></form>"
            + _news(headlines, "Latest news", "latest")
        )
        return _portal(self.identity, dynamic)


def visible_words(page: bytes) -> int:
    """How many words a reader sees (tags stripped): to keep the pages realistic in size."""
    text = page.decode()
    out, inside = [], False
    for char in text:
        if char == "<":
            inside = True
            out.append(" ")
        elif char == ">":
            inside = False
        elif not inside:
            out.append(char)
    return len("".join(out).split())
