"""Config validation, table-driven: each invalid file sits beside the exact errors it must give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from monitor.cli import main
from monitor.config import ConfigError, load_config, parse_config, parse_duration, parse_nameserver
from probes.settings import Nameserver

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "config"
INVALID = sorted(DATA.glob("invalid-*.toml"))


def test_there_is_an_invalid_file_per_class_of_error() -> None:
    assert len(INVALID) >= 15
    for path in INVALID:
        assert path.with_suffix(".errors").is_file(), f"{path.name} has no .errors file"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_gives_exact_errors(path: Path) -> None:
    expected = [f"{path}:{line}" for line in path.with_suffix(".errors").read_text().splitlines()]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(issue) for issue in caught.value.issues] == expected


@pytest.mark.parametrize("path", INVALID[:3], ids=[p.stem for p in INVALID[:3]])
def test_validate_cli_exits_2_with_file_line_errors(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:{line}" for line in path.with_suffix(".errors").read_text().splitlines()
    ]


def test_shipped_catalogue_is_valid_and_covers_the_region() -> None:
    config = load_config(ROOT / "targets.toml")
    assert set(config.countries) == {
        "AL", "XK", "MK", "ME", "RS", "BA", "HR", "SI", "BG", "RO", "GR", "MD", "TR",
    }  # fmt: skip
    seen_hosts = {
        line.split("\t")[1]
        for line in (ROOT / "docs" / "sources" / "region-portals.tsv").read_text().splitlines()[1:]
        if line.endswith("\tseen")
    }
    shipped = {t.host: t for t in config.targets}
    assert seen_hosts <= set(shipped), f"missing: {sorted(seen_hosts - set(shipped))}"
    assert all(shipped[h].evidence == "seen" for h in seen_hosts)
    assert all(t.url.startswith("https://") for t in config.targets)
    assert 3 <= len(config.canaries) <= 5


def test_validate_cli_summary_on_shipped_catalogue() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "monitor", "validate", str(ROOT / "targets.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) == 1
    assert "13 countries" in completed.stdout and "canaries" in completed.stdout


def test_defaults_are_applied(tmp_path: Path) -> None:
    text = '[[target]]\nname = "a"\nurl = "https://a.al.test/"\ncountry = "AL"\nsector = "portal"\n'
    config = parse_config(text, tmp_path / "t.toml")
    assert config.monitor.interval_s == 30 and config.monitor.timeout_s == 5
    assert config.monitor.resolvers == ()
    assert config.outage.country_min_targets == 3 and config.outage.confirm_reprobes == 1
    assert config.targets[0].line == 1 and config.targets[0].evidence == "seen"


def test_ca_file_is_relative_to_the_config(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "extra-ca.pem"))
    text = (
        '[monitor]\nca_file = "extra-ca.pem"\nresolvers = ["127.0.0.1:5353", "[::1]:53"]\n'
        '[[target]]\nname = "a"\nurl = "https://a.al.test/"\ncountry = "AL"\nsector = "portal"\n'
    )
    config = parse_config(text, tmp_path / "t.toml")
    assert config.monitor.ca_file == tmp_path / "extra-ca.pem"
    assert config.monitor.resolvers == (Nameserver("127.0.0.1", 5353), Nameserver("::1", 53))


def test_lines_are_found_past_multiline_values(tmp_path: Path) -> None:
    text = (
        "[monitor]\n"
        "resolvers = [\n"
        '  "127.0.0.1",\n'
        "]\n"
        '[[target]]\nname = "a"\nurl = """\nftp://a.al.test/"""\ncountry = "AL"\nsector = "portal"\n'
        '[[target]]\nname = "b"\nurl = "https://b.al.test/"\ncountry = "QQ"\nsector = "portal"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "t.toml")
    messages = [str(i) for i in caught.value.issues]
    assert any(m.startswith(f"{tmp_path / 't.toml'}:7: ") for m in messages)  # url with newline
    assert any(m.startswith(f"{tmp_path / 't.toml'}:14: ") and "QQ" in m for m in messages)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1m30s", 90),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("30d", 2592000),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "5 m", "-1s", "0s", "1w", "30s5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", Nameserver("127.0.0.1", 53)),
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("::1", Nameserver("::1", 53)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[2001:db8::1]", Nameserver("2001:db8::1", 53)),
    ],
)
def test_nameservers(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns1.test", "127.0.0.1:", "127.0.0.1:0", "[::1", "1.2.3.4:x"])
def test_bad_nameservers(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)
