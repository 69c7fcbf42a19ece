"""Seeded history databases, one per scenario, written once per test session."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard import queries
from tests.dashboard.seed import Seed, seed_database


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
        if scenario not in made:
            path = tmp_path_factory.mktemp("dashboard") / f"{scenario}.sqlite3"
            now = time.time()
            made[scenario] = Seeded(path, seed_database(path, scenario, now), now)
        return made[scenario]

    return get
