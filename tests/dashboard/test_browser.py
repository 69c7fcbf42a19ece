"""One real browser: `govwatch dashboard` on loopback, headless Chromium, the outage banner
visible on screen, and a screenshot saved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.browser import chromium, missing_browser, served_dashboard, wait_for_overview
from tests.dashboard.conftest import Seeded
from tests.dashboard.seed import counts_by_country

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))


@pytest.mark.timeout(90)
def test_the_outage_banner_is_visible_in_a_real_browser(
    seeded: Callable[[str], Seeded], tmp_path: Path
) -> None:
    data = seeded("albania")
    down, total = {c: (d, t) for c, d, t in counts_by_country(data.seed)}["AL"]
    started = next(i.started_at for i in data.seed.incidents if i.country == "AL" and i.is_open)
    expected = (
        f"Albania: {down} of {total} services down since "
        f"{datetime.fromtimestamp(started, UTC):%H:%M} UTC — connection timeouts"
    )
    with served_dashboard(data.path, tmp_path / "streamlit.log") as url, chromium() as driver:
        driver.get(url)
        banner = wait_for_overview(driver, expected)
        assert banner.is_displayed()
        assert banner.location["y"] < 400  # at the top, not below the fold
        shot = tmp_path / "overview.png"
        assert driver.save_screenshot(str(shot))
        # A page opened by its URL runs through app.py's navigation too.
        outages = sum(i.is_open and i.scope.value != "target" for i in data.seed.incidents)
        driver.get(f"{url}/incidents")
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: f"Open now: {outages} outage" in d.find_element(By.TAG_NAME, "body").text
        )
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
