"""One real browser: `govwatch dashboard` on loopback, headless Chromium, the outage banner
visible on screen, and a screenshot saved; and strings from the network shown as text,
never fetched or linked."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By

from dashboard.banner import format_clock
from tests.dashboard.browser import (
    chromium,
    click_first,
    first_shown,
    missing_browser,
    served_dashboard,
    wait_for_overview,
    wait_until,
)
from tests.dashboard.conftest import Seeded
from tests.dashboard.seed import (
    DEFACED_TARGET,
    counts_by_country,
    hostile_markup,
    seed_hostile,
    seed_tamper,
)

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module's tests: starting it is a good part of each test's time."""
    with chromium() as driver:
        yield driver


@pytest.mark.timeout(90)
def test_the_outage_banner_is_visible_in_a_real_browser(
    browser: Any, seeded: Callable[[str], Seeded], tmp_path: Path
) -> None:
    data = seeded("albania")
    down, total = {c: (d, t) for c, d, t in counts_by_country(data.seed)}["AL"]
    started = next(i.started_at for i in data.seed.incidents if i.country == "AL" and i.is_open)
    expected = (
        f"Albania: {down} of {total} services down since "
        f"{format_clock(datetime.fromtimestamp(started, UTC), datetime.now(UTC))}"
        " — connection timeouts"
    )
    driver = browser
    with served_dashboard(data.path, tmp_path / "streamlit.log", refresh_s=2) as url:
        driver.get(url)
        banner = wait_for_overview(driver, expected)
        assert banner.displayed
        assert banner.top < 400  # at the top, not below the fold
        shot = tmp_path / "overview.png"
        assert driver.save_screenshot(str(shot))
        # A page opened by its URL runs through app.py's navigation too.
        outages = sum(i.is_open and i.scope.value != "target" for i in data.seed.incidents)
        driver.get(f"{url}/incidents")
        wait_until(
            driver,
            lambda d: f"Open now: {outages} outage" in d.find_element(By.TAG_NAME, "body").text,
        )
        # Every page, not only the overview, names the outage in the tab and refreshes itself.
        wait_until(driver, lambda d: d.title == "OUTAGE: Albania — govwatch", 10)
        first = refreshed_at(driver)
        wait_until(driver, lambda d: refreshed_at(d) not in ("", first), 10)
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def refreshed_at(driver: Any) -> str:
    """The page footer's 'refreshed HH:MM:SS UTC' caption ('' while it is not drawn)."""
    for caption in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stCaptionContainer"]'):
        with contextlib.suppress(Exception):  # replaced while read: try the next poll
            if "refreshed" in caption.text:
                return str(caption.text)
    return ""


@contextlib.contextmanager
def pixel_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server that records every request: the browser must make none."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


# Attributes through which a page makes the browser fetch or link something.
URL_ATTRIBUTES = ("src", "srcset", "href", "xlink:href", "poster", "data", "action", "style")


def urls_to(driver: Any, origin: str) -> list[str]:
    """Every element of the page with a URL attribute that names `origin`."""
    found: list[str] = driver.execute_script(
        """
        const [origin, names] = arguments;
        const hits = [];
        for (const element of document.querySelectorAll("*")) {
            for (const name of names) {
                const value = element.getAttribute(name);
                if (value && value.includes(origin)) hits.push(`<${element.tagName} ${name}=${value}>`);
            }
        }
        return hits;
        """,
        origin,
        list(URL_ATTRIBUTES),
    )
    return found


@pytest.mark.timeout(90)
def test_strings_from_the_network_are_text_never_markup(browser: Any, tmp_path: Path) -> None:
    """A certificate issuer shared by the failing targets goes into the outage banner: as
    Markdown it made the browser fetch a pixel and show a link. Here target names, error
    texts, Server headers, certificates, name servers and the hint are all such markup,
    pointing at a loopback server that counts what it is asked for."""
    with pixel_server() as (port, requests):
        origin = f"127.0.0.1:{port}"
        markup = hostile_markup(f"http://{origin}")
        db = tmp_path / "hostile.sqlite3"
        target = seed_hostile(db, time.time(), markup).targets[0]
        with served_dashboard(db, tmp_path / "streamlit.log") as url:
            browser.get(url)
            banner = wait_for_overview(browser, "Albania:")
            assert banner.text.endswith(f"all share certificate issuer {markup}")
            assert urls_to(browser, origin) == []

            browser.get(f"{url}/target?target={quote(target.name, safe='')}")
            header = wait_until(
                browser,
                lambda d: first_shown(d, '[data-testid="stHeading"]', lambda t: t == target.name),
            )
            assert header.displayed
            wait_until(
                browser,
                lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')) >= 4,
            )  # the failures table and the TLS, DNS and HTTP details: the page is drawn
            caption = wait_until(
                browser, lambda d: first_shown(d, '[data-testid="stCaptionContainer"]', bool)
            )
            assert caption.text == f"Albania · {target.sector} · {target.url}"
            assert urls_to(browser, origin) == []
        assert requests == []


def defaced(text: str) -> bool:
    return DEFACED_TARGET in text


@pytest.mark.timeout(120)
def test_tamper_signals_link_to_their_evidence_shown_as_text(browser: Any, tmp_path: Path) -> None:
    """The overview's orange count and its links, followed in a real browser to the target
    page, where the evidence a defacer wrote (title, excerpts, script hosts) and the summary
    are markup pointing at a loopback server: nothing is fetched, nothing becomes a link."""
    with pixel_server() as (port, requests):
        origin = f"127.0.0.1:{port}"
        markup = hostile_markup(f"http://{origin}")
        db = tmp_path / "tamper.sqlite3"
        seed_tamper(db, time.time(), markup)
        with served_dashboard(db, tmp_path / "streamlit.log") as url:
            browser.get(url)
            count = wait_until(
                browser, lambda d: first_shown(d, '[class*="st-key-tamper_count"]', bool)
            )
            assert count.displayed and "Tamper signals: 4" in count.text
            link = '[data-testid="stPageLink-NavLink"]'
            first = wait_until(browser, lambda d: first_shown(d, link, defaced))
            assert first.text.endswith(f" — {markup}")
            assert urls_to(browser, origin) == []

            wait_until(browser, lambda d: click_first(d, link, defaced))
            title = wait_until(
                browser,
                lambda d: first_shown(
                    d, '[data-testid="stMarkdown"]', lambda t: t.startswith("title:")
                ),
            )
            assert title.text == f"title: “{markup}” → “{markup}”"
            assert browser.current_url.endswith(f"target?target={DEFACED_TARGET}")
            assert urls_to(browser, origin) == []
        assert requests == []
