"""The page fingerprint behind the defacement check: ordinary change keeps a page
similar to itself, a defacement does not, and no markup breaks or slows it unboundedly."""

from __future__ import annotations

import zlib

import pytest

from probes.page import (
    MAX_HOSTS,
    SKETCH_SIZE,
    TITLE_CHARS,
    PageFingerprint,
    PageMemo,
    fingerprint,
    text_similarity,
)

URL = "https://e-albania.al.test/"

NEWS = [
    "Qeveria miraton paketën e re të shërbimeve elektronike për qytetarët",
    "Aplikimi për pasaportë tani mund të bëhet plotësisht online",
    "Ndryshime në orarin e zyrave të gjendjes civile gjatë festave",
    "Shërbimi i ri për regjistrimin e bizneseve në vetëm një ditë",
    "Njoftim për mirëmbajtjen e sistemit të pagesave elektronike",
    "Pyetjet më të shpeshta rreth certifikatës familjare online",
    "Raporti vjetor i shërbimeve publike digjitale është publikuar",
    "Tani mund të tërhiqni vërtetimin e pronësisë pa radhë në zyrë",
    "Udhëzime për përdorimin e nënshkrimit elektronik në platformë",
    "Si të rinovoni lejen e drejtimit përmes portalit qeveritar",
    "Programi i bursave për studentët hapet për aplikime të reja",
    "Shërbimet shëndetësore online zgjerohen në të gjitha rrethet",
]


def portal(
    news: list[str],
    *,
    date: str = "15.07.2022",
    token: str = "a1b2c3d4e5f6a7b8c9d0e1f2",
    extra: str = "",
) -> str:
    items = "".join(
        f"<li><a href='/lajme/{i}'>{title}</a> <time>{date}</time></li>"
        for i, title in enumerate(news)
    )
    return f"""<!doctype html><html><head><title>e-Albania | Portali qeveritar</title>
<script src="/static/app.js"></script><style>body {{ color: red }}</style>
<script>var csrf = "{token}";</script></head>
<body><nav><a href="https://akshi.gov.al.test/">AKSHI</a> <a href="/sherbimet">Shërbimet</a></nav>
<h1>Mirë se vini në e-Albania</h1>
<p>Portali qeveritar i shërbimeve elektronike për qytetarët, bizneset dhe punonjësit e
administratës publike. Më shumë se 1200 shërbime online në një vend.</p>
<ul>{items}</ul>{extra}
<footer>Sesioni: {token} · Përditësuar më {date} · © Agjencia Kombëtare e Shoqërisë së Informacionit</footer>
</body></html>"""


DEFACED = """<html><head><title>HACKED BY Homeland Justice</title>
<script src="https://cdn.evil.test/x.js"></script></head>
<body bgcolor=black><h1>Hacked by Homeland Justice</h1><p>Your security is low. We were here.
Greetz to all brothers.</p><img src=flag.gif></body></html>"""


def similarity(a: str, b: str) -> float:
    return text_similarity(fingerprint(a, URL), fingerprint(b, URL))


@pytest.mark.parametrize(
    ("case", "changed", "at_least"),
    [
        ("the same page", portal(NEWS), 1.0),
        ("another date everywhere", portal(NEWS, date="16.07.2022"), 1.0),
        ("another session token", portal(NEWS, token="ffe0d9c8b7a6f5e4d3c2b1a0ffe0d9c8"), 1.0),
        (
            "one news item rotated in",
            portal(["Lajm i ri: hapet sporteli digjital në Shkodër", *NEWS[:-1]]),
            0.75,
        ),
        (
            "a banner added",
            portal(NEWS, extra="<div class=banner>Kujdes: mirëmbajtje sot nga ora 22:00</div>"),
            0.75,
        ),
        (
            "three of twelve items replaced",
            portal(
                ["Tema e parë e re sot", "Tema e dytë e re sot", "Tema e tretë e re sot", *NEWS[3:]]
            ),
            0.5,
        ),
    ],
)
def test_ordinary_change_keeps_a_page_similar(case: str, changed: str, at_least: float) -> None:
    assert similarity(portal(NEWS), changed) >= at_least, case


@pytest.mark.parametrize(
    ("case", "page"),
    [
        ("a defacement", DEFACED),
        (
            "an error page that answers 200",
            "<html><title>Error</title><body><h1>Database error</h1><p>Connection to the storage failed. Try again later.</p></body></html>",
        ),
        ("an empty page", "<html><body></body></html>"),
        (
            "a parked domain",
            "<html><title>e-albania.al.test is for sale</title><body>This domain may be for sale. Buy now at the best price from our registrar.</body></html>",
        ),
    ],
)
def test_a_replaced_page_is_not_similar(case: str, page: str) -> None:
    assert similarity(portal(NEWS), page) < 0.2, case


def test_what_the_fingerprint_keeps() -> None:
    seen = fingerprint(portal(NEWS), URL)
    assert seen.title == "e-Albania | Portali qeveritar"
    assert seen.link_hosts == ("akshi.gov.al.test",)  # relative links are the site itself
    assert seen.script_hosts == ()  # /static/app.js is the site's own
    assert seen.markers == ()
    assert (
        "csrf" not in seen.excerpt and "color" not in seen.excerpt
    )  # script and style are not text
    assert seen.excerpt.startswith("AKSHI Shërbimet Mirë se vini")  # the title is kept apart
    defaced = fingerprint(DEFACED, URL)
    assert defaced.title == "HACKED BY Homeland Justice"
    assert defaced.script_hosts == ("cdn.evil.test",)
    assert set(defaced.markers) >= {"hacked by", "your security is", "greetz"}


def test_markers_are_read_from_text_not_markup() -> None:
    page = "<html><body><script>var hacked_by = 'nobody';</script><p>Mirë se vini</p><!-- hacked by --></body></html>"
    assert fingerprint(page, URL).markers == ()


def test_hashes_are_stable_across_processes_and_versions() -> None:
    # A baseline stored in the history must compare after a restart: CRC-32, not hash().
    assert fingerprint("<p>Tirana 2022 portal</p>", URL).sketch == (
        zlib.crc32(b"tirana 0000 portal"),
    )


@pytest.mark.parametrize(
    "page",
    [
        "<div>" * 100_000 + "text",
        "<a href='" + "x" * 500_000,
        "".join(f"<a href='https://h{i}.test/'>{i}</a>" for i in range(5_000)),
        "<title>" + "T" * 100_000,
        "<script>" + "hacked by " * 50_000,
        "\x00\ufffd<![CDATA[" * 10_000,
        "<a href='http://[::1'>broken</a><a href='javascript:alert(1)'>js</a><a href='http://[fe80::1%eth0]/'>x</a>",
    ],
    ids=[
        "deep-nesting",
        "unterminated-attribute",
        "5000-links",
        "huge-title",
        "unclosed-script",
        "garbage",
        "bad-urls",
    ],
)
def test_any_markup_gives_a_bounded_fingerprint(page: str) -> None:
    seen = fingerprint(page, URL)
    assert isinstance(seen, PageFingerprint)
    assert len(seen.sketch) <= SKETCH_SIZE
    assert len(seen.title) <= TITLE_CHARS
    assert len(seen.link_hosts) <= MAX_HOSTS and len(seen.script_hosts) <= MAX_HOSTS
    assert "hacked by" not in seen.markers or not page.startswith("<script>")


def test_the_memo_fingerprints_a_page_again_only_when_its_text_changed() -> None:
    memo = PageMemo(capacity=2)
    page = portal(NEWS)
    first = memo.fingerprint(page, URL)
    assert first == fingerprint(page, URL)
    assert memo.fingerprint(page, URL) is first
    # One character is a new page; another URL is another entry (links are judged by it).
    changed = memo.fingerprint(page.replace("Portali", "Portal1", 1), URL)
    assert changed is not first and changed == fingerprint(
        page.replace("Portali", "Portal1", 1), URL
    )
    other = memo.fingerprint(page, "https://e-albania.al.test/sq/")
    assert other is not changed and len(memo) == 2
    # Bounded: a third URL forgets the least recently stored.
    memo.fingerprint(page, "https://third.al.test/")
    assert len(memo) == 2
    assert memo.fingerprint(page.replace("Portali", "Portal1", 1), URL) is not changed
