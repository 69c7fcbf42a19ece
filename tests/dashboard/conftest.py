"""Seeded history databases, one per scenario, written once per test session and again
when older than a minute: the dashboard calls a monitor silent for 3 minutes stale, and in
a full run a worker may come back to a scenario much later."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard import queries
from tests.dashboard.seed import Seed, seed_database

MAX_SEED_AGE_S = 60.0  # well under the dashboard's 180 s stale_after


@dataclass(frozen=True)
class Seeded:
    path: Path
    seed: Seed
    now: float  # the moment the scenario was seeded relative to

    @property
    def source(self) -> queries.SqliteSource:
        return queries.SqliteSource(str(self.path))


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Seeded]:
    made: dict[str, Seeded] = {}

    def get(scenario: str) -> Seeded:
        if scenario not in made or time.time() - made[scenario].now > MAX_SEED_AGE_S:
            path = tmp_path_factory.mktemp("dashboard") / f"{scenario}.sqlite3"
            now = time.time()
            made[scenario] = Seeded(path, seed_database(path, scenario, now), now)
        return made[scenario]

    return get
