"""Sites that fail and come back on their own rhythm: the background noise of a long run.

    plan = plan_flapping(region, share=0.1, half_period_s=(20.0, 60.0), seed=1)
    await play_flapping(plan, sim)       # switches faults until cancelled

A share of the region's targets (never a canary: the monitor would think itself
offline) flaps: each is healthy for its half period, then fails in one fault mode
for as long, and so on. Each flapping site gets its own mode, drawn once from every
mode that makes the HTTP probe fail (so one run exercises timeouts, resets, TLS
errors, bombs and DNS failures alike), its own half period and its own phase, so the
switches are spread in time. The same region, share, periods and seed give the same
plan: a long run can be repeated. `govwatch simulate --flapping SHARE` plays one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.region import FAULT_MODES, RECOVER, Region, Scope

if TYPE_CHECKING:  # the CLI's parser imports this module; it must stay light
    from simulator.scenarios import FaultSink

# Every mode that fails a probe; `expiring_cert` and `truncate` are warnings, not failures.
FLAPPING_MODES = tuple(name for name, mode in FAULT_MODES.items() if mode.http_reason is not None)
DEFAULT_HALF_PERIOD_S = (20.0, 60.0)


@dataclass(frozen=True, slots=True)
class Flapper:
    """One flapping site: up for `half_period_s`, down (in `mode`) as long, repeated."""

    host: str
    mode: str
    half_period_s: float
    phase_s: float  # how far into its cycle (0 to 2 half periods) the site is at the start

    def down_at(self, elapsed_s: float) -> bool:
        """Whether the site is failing `elapsed_s` after the start."""
        return math.floor((elapsed_s + self.phase_s) / self.half_period_s) % 2 == 1

    def next_switch_after(self, elapsed_s: float) -> float:
        """When (seconds after the start) the site next changes, after `elapsed_s`."""
        spells = math.floor((elapsed_s + self.phase_s) / self.half_period_s) + 1
        return spells * self.half_period_s - self.phase_s


def plan_flapping(
    region: Region,
    share: float,
    *,
    half_period_s: tuple[float, float] = DEFAULT_HALF_PERIOD_S,
    seed: int = 0,
) -> tuple[Flapper, ...]:
    """`share` of the region's targets (rounded), each with a mode, half period and phase."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the flapping share must be between 0 and 1, got {share:g}")
    shortest, longest = half_period_s
    if not 0.0 < shortest <= longest:
        raise ValueError(f"flapping periods must be positive, shortest first: {half_period_s}")
    draw = random.Random(seed)
    targets = region.targets
    chosen = set(draw.sample(range(len(targets)), round(share * len(targets))))
    plan = []
    for index, site in enumerate(targets):
        if index in chosen:
            half = draw.uniform(shortest, longest)
            plan.append(
                Flapper(site.host, draw.choice(FLAPPING_MODES), half, draw.uniform(0, 2 * half))
            )
    return tuple(plan)


async def play_flapping(
    plan: Sequence[Flapper],
    sink: FaultSink,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Switch each flapping site whenever its rhythm says, until cancelled.

    Every site starts healthy as far as this player knows; one that is down at the
    start is switched at once. Its up spells recover it, clearing every layer.
    """
    if not plan:
        return
    start = clock()
    down: set[str] = set()
    while True:
        elapsed = clock() - start
        for flapper in plan:
            failing = flapper.down_at(elapsed)
            if failing == (flapper.host in down):
                continue
            mode = flapper.mode if failing else RECOVER
            await sink.apply_fault(Scope.SITE, flapper.host, mode)
            if failing:
                down.add(flapper.host)
            else:
                down.discard(flapper.host)
        upcoming = min(flapper.next_switch_after(elapsed) for flapper in plan)
        await asyncio.sleep(max(0.0, upcoming - (clock() - start)))
