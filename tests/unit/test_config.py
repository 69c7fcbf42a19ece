"""Config validation, table-driven: each invalid file sits beside the exact errors it must give."""

from __future__ import annotations

import inspect
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from monitor.cli import main
from monitor.config import (
    ConfigError,
    load_config,
    parse_config,
    parse_duration,
    parse_nameserver,
    shown,
)
from monitor.maintenance import WEEK_S
from monitor.settings import MaintenanceWindow, Target
from probes.results import ProbeKind
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


def test_tamper_keys_are_read(tmp_path: Path) -> None:
    text = (
        '[[target]]\nname = "a"\nurl = "https://a.al.test/"\ncountry = "AL"\nsector = "portal"\n'
        'fail_if_body_matches = ["Hacked BY", "hacked by", "Defaced"]\ndefacement_similarity = 0.2\n'
    )
    (target,) = parse_config(text, tmp_path / "t.toml").targets
    assert target.fail_if_body_matches == ("hacked by", "defaced")  # lower case, once each
    assert target.defacement_similarity == 0.2
    probe = target.probe_target
    assert probe.fail_if_body_matches == ("hacked by", "defaced") and probe.fingerprint_page


def test_maintenance_windows_are_read(tmp_path: Path) -> None:
    text = (
        '[[target]]\nname = "a"\nurl = "https://a.al.test/"\ncountry = "AL"\nsector = "portal"\n'
        "[[maintenance]]\n"
        'note = "e-Albania upgrade"\n'
        "start = 2026-12-01T22:00:00Z\n"
        "end = 2026-12-02T01:00:00+01:00\n"
        'targets = ["a"]\n'
        "[[maintenance]]\n"
        'note = "weekly registry backup"\n'
        "start = 2026-12-06T02:00:00Z\n"
        "end = 2026-12-06T04:00:00Z\n"
        'every = "week"\n'
        'countries = ["RS"]\n'
        'sectors = ["registry", "tax"]\n'
    )
    config = parse_config(text, tmp_path / "t.toml")
    once, weekly = config.maintenance
    assert once == MaintenanceWindow(
        note="e-Albania upgrade",
        start=1796162400.0,  # 2026-12-01T22:00:00Z
        end=1796162400.0 + 7200,  # 01:00+01:00 is 00:00Z
        targets=frozenset({"a"}),
    )
    assert once.line == 6 and weekly.line == 11
    assert weekly.every_s == WEEK_S and weekly.end - weekly.start == 7200
    assert weekly.countries == {"RS"} and weekly.sectors == {"registry", "tax"}


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


@pytest.mark.parametrize(
    "text", ["", "30", "s", "5 m", "-1s", "0s", "1w", "30s5", "1" + "0" * 400 + "s", "٣٠s"]
)
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


@pytest.mark.parametrize(
    "text",
    [
        "ns1.test",
        "127.0.0.1:",
        "127.0.0.1:0",
        "[::1",
        "1.2.3.4:x",
        "1.2.3.4:٥٣",
        "[::1]:" + "9" * 30,
    ],
)
def test_bad_nameservers(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


# --- hostile files (issue 12): one clean error, never a traceback ----------------------

ONE_TARGET = (
    '[[target]]\nname = "a"\nurl = "https://a.al.test/"\ncountry = "AL"\nsector = "portal"\n'
)


def issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("x = " + "[" * 100_000 + "]" * 100_000, "arrays or inline tables nested more than 32 deep"),
        ("x = " + "{a = " * 100_000 + "1" + "}" * 100_000, "arrays or inline tables nested more than 32 deep"),
        ("x = [" + "{a = [" * 50_000, "arrays or inline tables nested more than 32 deep"),
        # 5,000 parts took tomllib 0.5 s and 100 MB; 100,000 took gigabytes
        (".".join(["x"] * 5_000) + " = 1", "a dotted key of more than 32 parts"),
        ("[" + ".".join(["x"] * 5_000) + "]", "a dotted key of more than 32 parts"),
        ("x = {" + ".".join(["x"] * 5_000) + " = 1}", "a dotted key of more than 32 parts"),
    ],
    ids=["arrays", "inline-tables", "unclosed-mix", "dotted-key", "dotted-header", "dotted-inline"],
)  # fmt: skip
def test_deep_structure_is_one_config_error(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(ONE_TARGET + document + "\n")
    assert issues(path) == [f"{path}:6: {message}"]


@pytest.mark.parametrize(
    "document",
    [
        'x = "[[[[{{{{ a.b.c.d"\ny = \'[[[[\'\nz = """\n[[[[[\n"""\n# [[[[[[[[[[\n',
        "".join(f"x{i} = [[[[1]]], [[[2]]]]\n" for i in range(20)),
        "a.b.c.d = 1\n[e.f.g]\nh.i = { j.k = 1, l.m = [1.5, 2.5] }\n",
    ],
    ids=["strings-and-comments", "many-shallow", "dotted-but-short"],
)
def test_structure_within_bounds_is_read(tmp_path: Path, document: str) -> None:
    """Brackets in strings and comments, and values side by side, are not nesting."""
    with pytest.raises(ConfigError) as caught:
        parse_config(ONE_TARGET.replace("[[target]]", document + "[[target]]"), tmp_path / "t.toml")
    assert caught.value.issues
    assert all("unknown table or key" in i.message for i in caught.value.issues)


def test_recursion_inside_tomllib_is_a_config_error(tmp_path: Path) -> None:
    """A reload thread or any deep caller leaves tomllib less stack than the bound assumes."""
    text = "x = " + "[" * 30 + "]" * 30 + "\n" + ONE_TARGET
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 60)
    try:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, tmp_path / "t.toml")
    finally:
        sys.setrecursionlimit(limit)
    assert [str(i) for i in caught.value.issues] == [
        f"{tmp_path / 't.toml'}: values nested too deeply to read"
    ]


def test_files_that_are_not_config_files_are_refused_before_reading(tmp_path: Path) -> None:
    huge = tmp_path / "huge.toml"
    with huge.open("w") as file:
        file.write(ONE_TARGET + "#" * (10 * 1024 * 1024) + "\n")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    assert issues(huge) == [f"{huge}: larger than 10 MiB: not a config file"]
    assert issues(fifo) == [f"{fifo}: cannot read: not a regular file (a FIFO)"]
    assert issues(tmp_path) == [f"{tmp_path}: cannot read: not a regular file (a directory)"]
    assert issues(tmp_path / "missing.toml") == [
        f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory"
    ]
    assert issues(Path("a\0b")) == ["a\0b: cannot read: embedded null byte"]
    if Path("/dev/zero").exists():  # endless
        assert issues(Path("/dev/zero")) == [
            "/dev/zero: cannot read: not a regular file (a device)"
        ]


def test_upper_case_scheme_and_host_get_the_tls_probe(tmp_path: Path) -> None:
    text = ONE_TARGET.replace("https://a.al.test/", "HTTPS://E-ALBANIA.TEST/Index.html?Q=A")
    text += '[[canary]]\nname = "c"\nurl = "HtTp://Dns.Quad9.Test:8080/"\n'
    config = parse_config(text, tmp_path / "t.toml")
    (target,) = config.targets
    assert target.url == "https://e-albania.test/Index.html?Q=A"  # path and query keep case
    assert ProbeKind.TLS in target.probe_kinds
    assert config.canaries[0].url == "http://dns.quad9.test:8080/"
    # and a Target made elsewhere (tests, the simulator) from an upper-case URL
    direct = Target(name="x", url="HTTPS://E-ALBANIA.TEST/", country="AL", sector="portal")
    assert ProbeKind.TLS in direct.probe_kinds


def test_credentials_are_refused_without_being_echoed() -> None:
    path = DATA / "invalid-url-credentials.toml"
    messages = issues(path)
    assert len(messages) == 2 and all("***@" in m for m in messages)
    assert not any("hunter2" in m or "admin" in m or "monitor@" in m for m in messages)


def test_long_header_line_is_read_in_linear_time(tmp_path: Path) -> None:
    """A lazy regular expression took O(n²) on this valid header: hours for 600,000 spaces."""
    path = tmp_path / "targets.toml"
    path.write_text("[target" + " " * 300_000 + ".b" + " " * 300_000 + "]\n")
    assert issues(path) == [f"{path}:1: target: must be an array of tables ([[target]])"]


def test_shown_escapes_and_shortens() -> None:
    assert shown("e-Albania") == '"e-Albania"'
    assert shown("a\x1b[2J\n\u202e\x00") == '"a\\x1b[2J\\n\\u202e\\x00"'
    assert shown("Shqipëri") == '"Shqipëri"'
    assert shown("x" * 1000) == '"' + "x" * 77 + '..."'


@pytest.mark.parametrize(
    "path",
    [DATA / "invalid-duration-range.toml", DATA / "invalid-nesting.toml", None],
    ids=["huge-duration", "nesting", "nesting-100k"],
)
def test_validate_cli_on_hostile_files_exits_2_without_traceback(
    tmp_path: Path, path: Path | None
) -> None:
    if path is None:
        path = tmp_path / "deep.toml"
        path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
        expected = [f"{path}:1: arrays or inline tables nested more than 32 deep"]
    else:
        errors = path.with_suffix(".errors").read_text().splitlines()
        expected = [f"{path}:{line}" for line in errors]
    completed = subprocess.run(
        [sys.executable, "-m", "monitor", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in completed.stderr
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines() == expected


# Fragments an attacker, a fuzzer or a bad merge might put anywhere in a targets file.
_HOSTILE_FRAGMENTS = [
    "[", "]", "{", "}", '"', "'", '"""', "'\'\'", "\\", "\n", "=", ",", ".", "#", " ", "\t",
    "\x00", "\u202e", "1e999", "nan", "-inf", "0x10", "1_000", "true", "9" * 5000,
    "2023-01-01T00:00:00Z", "[[target]]", "[[canary]]", "[monitor]", "[outage]", "a.b.c",
    '"\\u0000"', '"HTTPS://A.TEST/"', '"https://u:p@a/"', '"https://[::1/"', '"http://a:0/"',
    '"https://xn--a.test/"', '"1' + "0" * 400 + 's"', "{a = 1}", "[[], []]", 'name = ""',
    'resolvers = ["x"]', 'ca_file = "/dev/zero"', 'ca_file = "/"', 'ca_file = "' + "x" * 5000 + '"',
    "expect_status = [1e3]", 'interval = "1e3s"', 'country = "al"', "concurrency = -1",
]  # fmt: skip


def test_mutated_configs_give_config_errors_only() -> None:
    """Whatever the file holds, parse_config returns a Config or raises ConfigError whose
    messages are short and printable (nothing reaches the terminal raw)."""
    seeds = [
        p.read_text() for p in sorted(DATA.glob("*.toml")) if p.name != "invalid-not-utf8.toml"
    ]
    rng = random.Random(12)
    for _ in range(3000):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 8)):
            at = rng.randint(0, len(text))
            roll = rng.random()
            if roll < 0.6:
                text = text[:at] + rng.choice(_HOSTILE_FRAGMENTS) + text[at:]
            elif roll < 0.8:
                text = text[:at] + text[at + rng.randint(1, 20) :]
            else:
                start = rng.randint(0, len(text))
                text = text[:at] + text[start : start + 50] + text[at:]
        try:
            parse_config(text, DATA / "fuzzed.toml")
        except ConfigError as exc:
            for issue in exc.issues:
                assert issue.message.isprintable() and len(issue.message) < 1000, issue
