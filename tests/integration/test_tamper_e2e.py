"""Tamper signals end to end: `govwatch run` against the simulated region, real probes,
every tamper fault beside its benign twin, then `govwatch ack` as an operator runs it.

One daemon, one region of 12 sites, all faults at once: each attack raises its signal,
each benign twin (a rotating news page, a CDN rotating within its prefix, a renewal by
the same CA near expiry) and each untouched site stays quiet, and nothing of it opens
an outage.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from monitor.tamper import DEFAULT_TAMPER
from simulator.runner import Timing
from tests.integration.conftest import RegionFactory
from tests.integration.daemons import Daemon, wait_for

INTERVAL_S = 5.0
TIMING = Timing(interval="5s", timeout="2s", tls_interval="5s", reprobe_delay="0.5s")
LEARN_S = DEFAULT_TAMPER.learn_probes * INTERVAL_S + 10.0
# A deviation is seen at the next probe and confirmed by a re-probe; the SOA serial
# disagreement must last `serial_split_probes` probes first.
DETECT_S = (DEFAULT_TAMPER.serial_split_probes + 2) * INTERVAL_S + 10.0

ATTACKS = {
    "e-albania.al.test": "defaced",
    "kryeministria.al.test": "ns_change",
    "uslugi.gov.mk.test": "dnssec_strip",
    "vlada.mk.test": "other_ca_cert",
    "crm.com.mk.test": "renewed_cert",  # a new key with 90 days left: not a renewal
    "ekosova.rks-gov.net.test": "dns_hijack",
    "kryeministri.rks-gov.net.test": "serial_split",
}
BENIGN = {
    "akshi.gov.al.test": "rotating",
    "e-femijet.tirana.al.test": "cdn_rotate",
    "ujp.gov.mk.test": "renewed_cert",  # after an expiring certificate: a renewal
}
EXPECTED = {
    ("e-albania.al.test", "defacement"),
    ("kryeministria.al.test", "dns_change"),
    ("uslugi.gov.mk.test", "dnssec_downgrade"),
    ("vlada.mk.test", "cert_change"),
    ("crm.com.mk.test", "cert_change"),
    ("ekosova.rks-gov.net.test", "dns_change"),
    # The hijacker's server presents its own certificate, from another CA.
    ("ekosova.rks-gov.net.test", "cert_change"),
    ("kryeministri.rks-gov.net.test", "dns_change"),
}


async def raised(daemon: Daemon) -> set[tuple[str, str]]:
    return {(s["target"], s["kind"]) for s in (await daemon.status())["tamper"]}


async def learned(db: Path) -> int:
    """Baselines stored as fully learned: a page after `learn_probes` results."""

    def count() -> int:
        conn = sqlite3.connect(db)
        try:
            row = conn.execute(
                "SELECT count(*) FROM tamper_baselines WHERE kind = 'defacement' "
                "AND json_extract(baseline, '$.samples') >= ?",
                (DEFAULT_TAMPER.learn_probes,),
            ).fetchone()
            return int(row[0])
        except sqlite3.OperationalError:  # the daemon has not created the tables yet
            return 0
        finally:
            conn.close()

    return await asyncio.to_thread(count)


async def test_each_attack_raises_its_signal_and_each_benign_twin_stays_quiet(
    make_simulated_region: RegionFactory, tmp_path: Path
) -> None:
    db = tmp_path / "history.sqlite3"
    async with make_simulated_region(timing=TIMING) as sim:
        # The renewal twin's baseline is a certificate near its expiry.
        await sim.apply_fault("site", "ujp.gov.mk.test", "expiring_cert")
        daemon = Daemon(sim.targets_file(), db)
        try:
            await daemon.start()

            async def all_learned() -> bool:
                return await learned(db) == 12

            await wait_for(all_learned, LEARN_S + 20.0, "every page's baseline learned")
            assert await raised(daemon) == set()
            for host, mode in {**ATTACKS, **BENIGN}.items():
                await sim.apply_fault("site", host, mode)

            async def all_raised() -> bool:
                return await raised(daemon) >= EXPECTED

            await wait_for(all_raised, DETECT_S, "every attack's signal")
            # The SOA split needs 3 probes in a row, so by now every benign twin has been
            # judged 3 times or more; one more round of every probe to be sure.
            await asyncio.sleep(INTERVAL_S + 1.0)
            assert await raised(daemon) == EXPECTED

            status = await daemon.status()
            assert not status["incidents"] or all(
                i["scope"] == "target" for i in status["incidents"]
            ), "tamper signals never open a country, region or vantage outage"
            targets = {t["name"]: t for t in status["targets"]}
            assert targets["e-albania.al.test"]["tamper"] == ["defacement"]
            assert targets["vlada.mk.test"]["state"] == "up"  # a signal is not "down"
            (defacement,) = [s for s in status["tamper"] if s["kind"] == "defacement"]
            assert defacement["country"] == "AL"
            assert "hacked by" in defacement["evidence"]["new_markers"]
            assert defacement["evidence"]["new_title"].lower().startswith("hacked by")
            (cert,) = [s for s in status["tamper"] if s["target"] == "vlada.mk.test"]
            assert cert["evidence"]["new_issuer"] == "govwatch simulator other CA"
            assert (
                await daemon.metric(
                    "govwatch_tamper_signal", target="e-albania.al.test", kind="defacement"
                )
                == 1
            )
            assert (
                await daemon.metric(
                    "govwatch_tamper_signal", target="akshi.gov.al.test", kind="defacement"
                )
                == 0
            )

            # The operator looks, understands, and accepts: the signal clears, and the
            # page it serves now is the baseline (it does not fire again).
            ack = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor", "ack", "e-albania.al.test", "defacement",
                "--db", str(db), "--note", "rehearsal",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(ack.communicate(), 30.0)
            assert ack.returncode == 0, err.decode()
            assert "acknowledged" in out.decode()
            await asyncio.sleep(INTERVAL_S + 1.0)  # a round of probes: it does not fire again
            assert ("e-albania.al.test", "defacement") not in await raised(daemon)
            assert (
                await daemon.metric(
                    "govwatch_tamper_signal", target="e-albania.al.test", kind="defacement"
                )
                == 0
            )

            def stored() -> list[tuple[str, str, str | None, str | None]]:
                conn = sqlite3.connect(db)
                try:
                    return conn.execute(
                        "SELECT target, kind, cleared_by, note FROM tamper_signals "
                        "WHERE json_extract(evidence, '$.new_title') IS NOT NULL"
                    ).fetchall()
                finally:
                    conn.close()

            async def ack_stored() -> bool:
                rows = await asyncio.to_thread(stored)
                return rows == [("e-albania.al.test", "defacement", "ack", "rehearsal")]

            await wait_for(ack_stored, 10.0, "the acknowledgement in the history")
        except BaseException:
            print(daemon.log.read_text(errors="replace")[-6000:])
            raise
        finally:
            await daemon.close()
