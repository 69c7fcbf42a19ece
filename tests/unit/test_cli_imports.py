"""The daemon's command line does not load the simulator: `import monitor.cli` loads none
of it, and building the parser (every `govwatch` command, `run` included) loads only
`simulate`'s parser module, never the runner, the servers or their CA (trustme)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("trustme", "simulator.runner", "simulator.pki", "simulator.web", "simulator.dns_server")


def _loaded_after(script: str) -> set[str]:
    script = f"import sys\n{script}\nprint('\\n'.join(sorted(sys.modules)))\n"
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return set(output.split())


def test_importing_the_cli_loads_no_simulator() -> None:
    loaded = _loaded_after("import monitor.cli")
    assert "trustme" not in loaded
    assert "simulator.runner" not in loaded
    assert not [name for name in loaded if name.split(".")[0] == "simulator"]


def test_building_the_parser_loads_no_simulator_runner_or_ca() -> None:
    loaded = _loaded_after(
        "import monitor.cli\n"
        "parser = monitor.cli.build_parser()\n"
        "parser.parse_args(['run', 'targets.toml'])\n"
        "parser.parse_args(['simulate', '--countries', 'AL', 'fault', 'site', 'x', 'drop'])"
    )
    assert "simulator.cli" in loaded  # `simulate` is still a command, with all its options
    assert not [name for name in loaded if name in HEAVY]
