"""The simulated region as a fixture: real HTTPS and DNS servers on loopback, in-process.

    async def test_something(simulated_region: SimulatedRegion) -> None:
        config = load_config(simulated_region.targets_file())
        await simulated_region.apply_fault("country", "AL", "drop")

`simulated_region` is small (AL, XK, MK x 4 sites + 3 canaries, one vantage,
1 s probe timeout). For another layout use `make_simulated_region`:

    async with make_simulated_region(countries=("AL", "GR"), per_country=6,
                                      vantages=("home", "abroad")) as sim: ...

Ports come from the OS; addresses are fixed per site (127.10.<country>.<n>),
so several regions can run at once as long as they use different ports.
Everything is torn down when the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from simulator.control import ControlServer
from simulator.region import HOME_VANTAGE, build_region
from simulator.runner import SimulatedRegion, Timing

TEST_COUNTRIES = ("AL", "XK", "MK")
TEST_PER_COUNTRY = 4
# Short budgets keep timeout faults quick; the interval only has to exceed the timeout.
TEST_TIMING = Timing(interval="5s", timeout="1s", tls_interval="10s", reprobe_delay="0.2s")

RegionFactory = Callable[..., contextlib.AbstractAsyncContextManager[SimulatedRegion]]


@pytest.fixture
def make_simulated_region(tmp_path: Path) -> RegionFactory:
    """`async with make_simulated_region(countries=..., per_country=..., ...) as sim`."""
    counter = iter(range(1_000_000))

    @contextlib.asynccontextmanager
    async def factory(
        *,
        countries: Sequence[str] = TEST_COUNTRIES,
        per_country: int = TEST_PER_COUNTRY,
        vantages: Sequence[str] = (HOME_VANTAGE,),
        dnssec: bool = True,
        timing: Timing = TEST_TIMING,
    ) -> AsyncIterator[SimulatedRegion]:
        region = build_region(countries, per_country, vantages)
        out_dir = tmp_path / f"simulation-{next(counter)}"
        async with SimulatedRegion(region, out_dir, timing=timing, dnssec=dnssec) as sim:
            yield sim

    return factory


@pytest.fixture
async def simulated_region(make_simulated_region: RegionFactory) -> AsyncIterator[SimulatedRegion]:
    """A running small region (AL, XK, MK x 4 sites, 3 canaries); its files in tmp_path."""
    async with make_simulated_region() as sim:
        yield sim


@pytest.fixture
async def simulator_control(simulated_region: SimulatedRegion) -> AsyncIterator[ControlServer]:
    """The control API of `simulated_region` on a free 127.0.0.1 port (`.url`)."""
    control = ControlServer(simulated_region, port=0)
    await control.start()
    try:
        yield control
    finally:
        await control.stop()
