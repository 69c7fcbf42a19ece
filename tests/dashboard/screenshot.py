"""Photograph a dashboard page with headless Chromium.

    .venv/bin/python -m tests.dashboard.screenshot docs/screenshot-overview.png \
        --db data/demo/govwatch.sqlite3 --banner "Albania:"
    .venv/bin/python -m tests.dashboard.screenshot docs/screenshot-targets.png \
        --db data/demo/govwatch.sqlite3 --path /targets --wait-text "last 24 h"

With --db, serves `govwatch dashboard` over that history (e.g. a daemon watching
`govwatch simulate` with Albania's network cut: see the README) and waits for the
banner text. Without it, seeds a temporary database with tests.dashboard.seed's
"albania" day.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.dashboard.browser import (
    chromium,
    missing_browser,
    served_dashboard,
    text_of,
    wait_for_overview,
    wait_until,
)
from tests.dashboard.seed import seed_database

# Let the map's fade-in and the fonts settle before the picture.
SETTLE_S = 3.0


def wait_for_text(driver: Any, text: str, timeout_s: float = 60.0) -> None:
    """Wait (bounded) until the page shows `text`."""
    from selenium.webdriver.common.by import By

    wait_until(driver, lambda d: text in text_of(d.find_element(By.TAG_NAME, "body")), timeout_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output", type=Path, nargs="?", default=Path("docs/screenshot-overview.png")
    )
    parser.add_argument("--db", type=Path, help="an existing history database to show")
    parser.add_argument("--banner", default="", help="with --db: text the banner must show")
    parser.add_argument(
        "--path", default="", help="the page and query after the address, e.g. /targets or /?wall=1"
    )
    parser.add_argument(
        "--wait-text", default="", help="with --path: text the page must show before the picture"
    )
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        parser.error(reason)
    with tempfile.TemporaryDirectory(prefix="govwatch-shot-") as scratch:
        if args.db is not None:
            db, banner = args.db, args.banner
        else:
            db = Path(scratch) / "history.sqlite3"
            seed = seed_database(db, "albania", time.time())
            started = next(i.started_at for i in seed.incidents if i.country == "AL" and i.is_open)
            banner = f"services down since {datetime.fromtimestamp(started, UTC):%H:%M} UTC"
        with (
            served_dashboard(db, Path(scratch) / "streamlit.log") as url,
            chromium(args.width, args.height) as driver,
        ):
            driver.get(url.rstrip("/") + args.path if args.path else url)
            if args.path:
                wait_for_text(driver, args.wait_text)
            else:
                wait_for_overview(driver, banner)
            time.sleep(SETTLE_S)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.output))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
