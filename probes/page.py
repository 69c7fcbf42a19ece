"""What a page says, in a few hundred bytes: the fingerprint the defacement check compares.

Pure and bounded: no I/O, no clock, and the work is capped whatever the page holds
(at most MAX_HTML_CHARS of markup are parsed, MAX_TEXT_WORDS words shingled), so a
hostile 1 MiB page costs what a 256 KiB one does.

The fingerprint keeps what a defacement changes and ordinary change does not:

- the page's visible text as a bottom-k sketch (the SKETCH_SIZE smallest hashes of its
  word 3-shingles), so two pages' text similarity is an estimate of the Jaccard
  similarity of their shingle sets (Broder's bottom-k estimator); digits are folded to
  `0` and long token-like words to `#`, so a date, a counter or a session token in
  the text changes nothing;
- the title, the hosts the page links to and loads scripts from (a defacement often
  adds a foreign script host), a short excerpt for the operator, and the known
  defacement phrases ("hacked by", ...) found in the visible text.

Hashes are CRC-32 of UTF-8 shingles, stable across processes and versions, so a
baseline kept in the history still compares after a restart.

Cost (CPU time, `python -m bench.tamper_cost`): 0.2 ms for a 2 KiB page, 1.6 ms for
19 KiB, 3.7 ms for 76 KiB with 600 links, 11 ms at the 256 KiB cap; at most ~100 ms
for 256 KiB of hostile markup (every character a `<`). The HTTP probe computes it for
every 2xx HTML page of a target (`ProbeTarget.fingerprint_page`), through its context's
`PageMemo`: a page served exactly as last time costs a SHA-256 (0.13 ms at 76 KiB).
"""

from __future__ import annotations

import hashlib
import html
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

MAX_HTML_CHARS = 256 * 1024  # markup read; portals' front pages are 30-200 KiB
MAX_TEXT_WORDS = 1_000  # words of visible text shingled: enough to tell one page from another
SKETCH_SIZE = 64  # hashes kept: about +-0.06 standard error on the similarity estimate
MAX_HOSTS = 32
TITLE_CHARS = 200
EXCERPT_CHARS = 240
MAX_ATTRIBUTES_CHARS = 2_000  # how far into a tag an href or src is looked for

# Phrases defacers sign with, in the region's languages as seen in past waves; matched
# case-insensitively on the visible text (never on markup, so a script variable named
# "hacked" does not count).
DEFACEMENT_MARKERS: tuple[str, ...] = (
    "hacked by",
    "hacked_by",
    "owned by",
    "defaced by",
    "was here",
    "your security is",
    "security is low",
    "greetz",
    "hackeado",
    "hacklendi",  # Turkish
    "хакнат",  # Bulgarian, Macedonian, Serbian Cyrillic
    "hakovan",  # Serbian, Croatian, Bosnian
    "hakiran",
)

# Regular expressions, not an HTML parser: html.parser took 26 ms for a 57 KiB page, these
# take about 1 ms. Every pattern is linear whatever the input: a hidden element without
# its end tag runs to the end of the page (as browsers treat it), a tag is `<` up to the
# next `<` or `>`, and attribute scans are bounded.
_HIDDEN = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|noscript|template|svg|title)\b.*?(?:</\1\s*>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_TITLE = re.compile(r"<title\b[^<>]{0,200}>([^<]{0,800})", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>?")
# Only values that can name another host: absolute or scheme-relative URLs, and values
# with a character reference (`&#47;&#47;evil.test` is `//evil.test` to a browser). Relative
# links, most of a portal's hundreds, never leave the regex engine.
_FOREIGN_VALUE = r"""\s*=\s*["']?\s*((?:https?:)?//[^\s"'<>]*|[^\s"'<>]*&[^\s"'<>]*)"""
_ANCHOR_LINK = re.compile(
    rf"<a\s[^<>]{{0,{MAX_ATTRIBUTES_CHARS}}}?\bhref{_FOREIGN_VALUE}", re.IGNORECASE
)
_SCRIPT_LINK = re.compile(
    rf"<script\s[^<>]{{0,{MAX_ATTRIBUTES_CHARS}}}?\bsrc{_FOREIGN_VALUE}", re.IGNORECASE
)
TOKEN_CHARS = 20  # a word this long with a digit in it is a session id or a hash
_HAS_DIGIT = re.compile(r"\d")
_URL_HOST = re.compile(
    r"\s*(?:https?:)?//(?:[^/?#@\s]*@)?(\[[0-9a-fA-F:.]+\]|[^/?#:\s\[\]]+)", re.IGNORECASE
)
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class PageFingerprint:
    """A page's identity for change detection; small enough to store with every result."""

    title: str  # whitespace-collapsed, at most TITLE_CHARS
    text_chars: int  # visible text length
    sketch: tuple[int, ...]  # bottom-k CRC-32 hashes of the text's shingles, ascending
    link_hosts: tuple[str, ...]  # other hosts <a href> points at, sorted, at most MAX_HOSTS
    script_hosts: tuple[str, ...]  # other hosts <script src> loads from, sorted, at most MAX_HOSTS
    excerpt: str  # the first EXCERPT_CHARS of the visible text
    markers: tuple[str, ...]  # DEFACEMENT_MARKERS found in the visible text


def fingerprint(markup: str, page_url: str) -> PageFingerprint:
    """The fingerprint of `markup` (an HTML page, already decoded) served at `page_url`."""
    markup = markup[:MAX_HTML_CHARS]
    title = _TITLE.search(markup)
    text = " ".join(html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", markup))).split())
    lowered = text.casefold()
    link_hosts, script_hosts = _linked_hosts(markup, page_url)
    return PageFingerprint(
        title=" ".join(html.unescape(title[1]).split())[:TITLE_CHARS] if title else "",
        text_chars=len(text),
        sketch=_sketch(lowered),
        link_hosts=link_hosts,
        script_hosts=script_hosts,
        excerpt=text[:EXCERPT_CHARS],
        markers=tuple(m for m in DEFACEMENT_MARKERS if m in lowered),
    )


class PageMemo:
    """The last fingerprint of each page URL, with the SHA-256 of the text it came from: a
    page served exactly as last time is not fingerprinted again (hashing 76 KiB costs
    ~0.1 ms, fingerprinting it ~4 ms). A cryptographic hash, not a checksum: a defacer
    must not be able to pass a new page off as the old one by forging a CRC.

    Bounded: at most `capacity` URLs, the least recently stored forgotten first. Owned by
    one probe context (probes.context); the fingerprint returned is the same either way."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._pages: dict[str, tuple[bytes, PageFingerprint]] = {}

    def __len__(self) -> int:
        return len(self._pages)

    def fingerprint(self, markup: str, page_url: str) -> PageFingerprint:
        digest = hashlib.sha256(markup.encode("utf-8", "surrogatepass")).digest()
        known = self._pages.pop(page_url, None)
        page = known[1] if known is not None and known[0] == digest else None
        if page is None:
            page = fingerprint(markup, page_url)
        self._pages[page_url] = (digest, page)
        if len(self._pages) > self._capacity:
            del self._pages[next(iter(self._pages))]
        return page


def text_similarity(a: PageFingerprint, b: PageFingerprint) -> float:
    """Estimated Jaccard similarity of two pages' shingle sets, 0.0 to 1.0 (see
    `sketch_similarity`)."""
    return sketch_similarity(a.sketch, b.sketch)


def sketch_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Bottom-k estimate of the Jaccard similarity of two sketches: the share of the k
    smallest hashes of the union that both hold. Two pages without text are alike; one
    without text is unlike any page with text. (A stored baseline keeps only its sketch.)"""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    union_bottom = sorted(set(a) | set(b))[:SKETCH_SIZE]
    both = set(a) & set(b)
    return sum(1 for h in union_bottom if h in both) / len(union_bottom)


def _sketch(lowered_text: str) -> tuple[int, ...]:
    """Bottom-k hashes of word 3-shingles, digits folded to 0 and token-like words to '#'."""
    # Whitespace-separated words, punctuation kept: str.split is C-speed, \w+ took 1 ms.
    words = [
        "#" if len(word) >= TOKEN_CHARS and _HAS_DIGIT.search(word) else word
        for word in lowered_text[: MAX_TEXT_WORDS * 16].split()[:MAX_TEXT_WORDS]
    ]
    folded = _DIGIT.sub("0", " ".join(words)).split(" ")
    if len(folded) < 3:
        shingles = {" ".join(folded)} if words else set()
    else:
        shingles = {f"{a} {b} {c}" for a, b, c in zip(folded, folded[1:], folded[2:], strict=False)}
    return tuple(sorted(zlib.crc32(s.encode()) for s in shingles)[:SKETCH_SIZE])


def _linked_hosts(markup: str, page_url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    page_host = _host(page_url) or ""
    found = []
    for pattern in (_ANCHOR_LINK, _SCRIPT_LINK):
        hosts: set[str] = set()
        for value in pattern.findall(markup):
            host = _host(html.unescape(value) if "&" in value else value)
            if host is not None and host != page_host:
                hosts.add(host)
                if len(hosts) >= MAX_HOSTS * 4:
                    break
        found.append(tuple(sorted(hosts))[:MAX_HOSTS])
    return found[0], found[1]


def _host(url: str) -> str | None:
    """The lower-case host of an absolute http(s) or scheme-relative URL; None for relative
    URLs (the page's own site) and other schemes. A regex, not urlsplit: a portal's
    front page has hundreds of links, and this runs on every HTTP probe."""
    match = _URL_HOST.match(url)
    return match[1].lower()[:253] if match else None
