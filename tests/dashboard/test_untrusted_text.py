"""Strings from the network or the config are text on every page, never markup: AppTest on
a history where the target names, error texts, Server headers, certificates,
name servers and the outage's hint are all Markdown, HTML and Streamlit directives; and on
one where every string of the tamper signals (the summary, the acknowledgement's note, each
evidence value and key: a defacer wrote the page's title and text) is."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard.banner import format_clock, reason_phrase
from monitor.config import load_config
from tests.dashboard.conftest import Seeded
from tests.dashboard.markup import markdown_strings, shown
from tests.dashboard.seed import (
    CERT_TARGET,
    DEFACED_TARGET,
    HOSTILE_DOWN_AGE_S,
    ZONE_TARGET,
    hostile_markup,
    seed_hostile,
    seed_tamper,
)
from tests.dashboard.test_app import run_app
from tests.dashboard.test_tamper import evidence, page_links

# Nothing is fetched under AppTest; the browser test serves this origin for real.
MARKUP = hostile_markup("http://127.0.0.1:9")
# Any of these in a Markdown element's source, not after a backslash, means part of MARKUP
# went in unescaped (as_text escapes every dot of the address).
RAW_FRAGMENTS = [
    re.compile(r"(?<!\\)" + re.escape(fragment))
    for fragment in ("127.0.0.1", "<img", ":red[", ":material/home:", ":smile:", "$x$", "*em*")
]
PAGES = (None, "views/incidents.py", "views/targets.py", "views/target.py", "views/countries.py")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("hostile") / "hostile.sqlite3"
    now = time.time()
    return Seeded(path, seed_hostile(path, now, MARKUP), now)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "views/overview.py")
def test_no_page_renders_untrusted_strings_as_markup(hostile: Seeded, page: str | None) -> None:
    query = {"target": hostile.seed.targets[0].name} if page == "views/target.py" else None
    app = run_app(hostile.source, page, query)
    strings = markdown_strings(app)
    assert strings  # the page drew something: a page that failed would pass vacuously
    for markdown in strings:
        for fragment in RAW_FRAGMENTS:
            assert not fragment.search(markdown), f"{fragment.pattern} unescaped in {markdown!r}"


def test_the_overview_shows_the_hostile_issuer_as_text(hostile: Seeded) -> None:
    app = run_app(hostile.source)
    started = datetime.fromtimestamp(hostile.now - HOSTILE_DOWN_AGE_S, UTC)
    (banner,) = app.error
    assert shown(banner.value) == (
        f"Albania: 3 of 3 services down since {format_clock(started, datetime.now(UTC))} — "
        f"{reason_phrase('http_status')}; all share certificate issuer {MARKUP}"
    )
    outages, down_now = (df.value for df in app.dataframe[1:])
    assert list(outages["hint"]) == [f"all share certificate issuer {MARKUP}"]
    assert set(down_now["target"]) == {t.name for t in hostile.seed.targets}


def test_the_target_page_shows_hostile_names_errors_and_certificates_as_text(
    hostile: Seeded,
) -> None:
    target = hostile.seed.targets[0]
    app = run_app(hostile.source, "views/target.py", {"target": target.name})
    assert shown(app.header[0].value) == target.name
    assert shown(app.caption[0].value) == f"Albania · {target.sector} · {target.url}"
    (down,) = app.error
    assert shown(down.value).startswith("Down since ")
    failures, *details = (df.value for df in app.dataframe)
    assert set(failures["error"]) == {MARKUP}
    fields = {(f.field, f.value) for df in details for f in df.itertuples()}
    for field in ("subject", "issuer", "nameservers", "server", "error"):
        assert (field, MARKUP) in fields


# A kind this dashboard does not know, with hostile keys: its evidence is listed key by key.
UNKNOWN_KIND_TARGET = CERT_TARGET


@pytest.fixture(scope="module")
def hostile_signals(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("hostile_tamper") / "tamper.sqlite3"
    now = time.time()
    seed = seed_tamper(path, now, MARKUP)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO tamper_signals (id, target, kind, country, raised_at, summary, "
            "evidence, updated_at) VALUES (?, ?, ?, 'ME', ?, ?, ?, ?)",
            (
                "x",
                UNKNOWN_KIND_TARGET,
                MARKUP,
                now - 60,
                MARKUP,
                json.dumps({MARKUP: MARKUP, "count": [MARKUP, 3]}),
                now,
            ),
        )
    return Seeded(path, seed, now)


SIGNAL_PAGES = [
    (None, None),
    ("views/target.py", DEFACED_TARGET),
    ("views/target.py", ZONE_TARGET),
    ("views/target.py", CERT_TARGET),
]


@pytest.mark.parametrize(("page", "target"), SIGNAL_PAGES, ids=lambda p: p or "overview")
def test_no_page_renders_tamper_evidence_summaries_or_notes_as_markup(
    hostile_signals: Seeded, page: str | None, target: str | None
) -> None:
    app = run_app(hostile_signals.source, page, {"target": target} if target else None)
    strings = markdown_strings(app)
    assert any("Tamper signals" in s for s in strings)  # the section was drawn
    for markdown in strings:
        for fragment in RAW_FRAGMENTS:
            assert not fragment.search(markdown), f"{fragment.pattern} unescaped in {markdown!r}"


def test_hostile_tamper_strings_are_shown_exactly_as_text(hostile_signals: Seeded) -> None:
    overview = run_app(hostile_signals.source)
    labels = [label for label, _ in page_links(overview)]
    assert labels and all(label.endswith(f" — {MARKUP}") for label in labels)  # the summaries
    assert any(f" · {MARKUP}" in label for label in labels)  # the unknown kind

    defaced = evidence(
        run_app(hostile_signals.source, "views/target.py", {"target": DEFACED_TARGET})
    )
    assert defaced["title"] == f"“{MARKUP}” → “{MARKUP}”"
    assert defaced["text before"] == defaced["text now"] == MARKUP
    assert defaced["scripts from new hosts"] == MARKUP
    assert defaced["defacement phrases"] == f"{MARKUP}, {MARKUP}"  # two phrases

    app = run_app(hostile_signals.source, "views/target.py", {"target": CERT_TARGET})
    shown_evidence = evidence(app)
    assert shown_evidence["issuer"] == f"{MARKUP} (unchanged)"
    assert shown_evidence[MARKUP] == MARKUP  # the unknown kind's key and value
    assert shown_evidence["count"] == f"{MARKUP}, 3"
    summaries = [
        shown(m.value) for m in app.markdown if not m.value.startswith(("**", "<style>", ":"))
    ]
    assert MARKUP in summaries

    zone = run_app(hostile_signals.source, "views/target.py", {"target": DEFACED_TARGET})
    cleared = next(df.value for df in zone.dataframe if "cleared_by" in df.value.columns)
    assert list(cleared["note"]) == [MARKUP]  # a table cell: text by nature


def test_shown_refuses_markdown_that_could_still_be_markup() -> None:
    for markdown in (
        "![p](x)",
        r"\[a\](b)",
        "<b>",
        ":red[x]",
        "$x$",
        "a *b*",
        r"http\://x",
        r"\:material/home\:",
        r"\:smile\:",
    ):
        with pytest.raises(AssertionError):
            shown(markdown)
    assert shown(r"\[a\]\(b\) http\:" + "\u2060" + "//x") == "[a](b) http://x"


def test_the_hostile_strings_are_ones_a_targets_file_accepts(tmp_path: Path) -> None:
    """Config validation lets them through (they are printable and short), so the
    dashboard is where they must become text."""
    name = f"{MARKUP} 1"
    toml = tmp_path / "targets.toml"
    toml.write_text(
        "[[target]]\n"
        f"name = {json.dumps(name)}\n"
        'url = "https://site-1.al.test/"\n'
        'country = "AL"\n'
        'sector = "portal"\n'
    )
    (target,) = load_config(toml).targets
    assert target.name == name
