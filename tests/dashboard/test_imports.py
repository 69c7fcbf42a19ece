"""What the dashboard may import: monitor.storage's readers and the I/O-free vocabulary
(probes.results, probes.settings, probes.page), never a probe, the scheduler or the daemon."""

from __future__ import annotations

import subprocess
import sys

DASHBOARD = ("dashboard.source", "dashboard.queries", "dashboard.prom", "dashboard.ui")
# probes.page (the page fingerprint: html, re and zlib, no I/O) comes with monitor.storage,
# whose writer stores tamper baselines through monitor.tamper.
ALLOWED_PROBES = {"probes", "probes.results", "probes.settings", "probes.page"}
FORBIDDEN = ("monitor.scheduler", "monitor.daemon", "monitor.config", "aiohttp", "dns", "OpenSSL")


def test_the_dashboard_loads_no_probe_scheduler_or_network_library() -> None:
    script = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in DASHBOARD)
        + "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout.split()
    probes = {name for name in loaded if name == "probes" or name.startswith("probes.")}
    assert probes <= ALLOWED_PROBES
    assert "monitor.storage.readers" in loaded
    assert not [n for n in loaded if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN]
