"""Strings from the network or the config are text on every page, never markup: AppTest on
a history where the target names, error texts, Server headers, certificates,
name servers and the outage's hint are all Markdown, HTML and Streamlit directives."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard.banner import format_clock, reason_phrase
from monitor.config import load_config
from tests.dashboard.conftest import Seeded
from tests.dashboard.markup import markdown_strings, shown
from tests.dashboard.seed import HOSTILE_DOWN_AGE_S, hostile_markup, seed_hostile
from tests.dashboard.test_app import run_app

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
