"""as_text: what came from the network or the config stays text in Streamlit's Markdown."""

from __future__ import annotations

import pytest

from dashboard.text import as_text
from tests.dashboard.markup import shown

# (input, what the Markdown source must be so it renders literally)
ROWS = [
    pytest.param("e-Albania", r"e\-Albania", id="ordinary-name"),
    pytest.param("![p](x.png)", r"\!\[p\]\(x\.png\)", id="image"),
    pytest.param("[a](b)", r"\[a\]\(b\)", id="link"),
    pytest.param("<img src=x>", r"\<img src\=x\>", id="html"),
    pytest.param("*bold* _em_", r"\*bold\* \_em\_", id="emphasis"),
    pytest.param("# heading", r"\# heading", id="heading"),
    pytest.param("`code`", r"\`code\`", id="code"),
    pytest.param("$x^2$", r"\$x\^2\$", id="latex"),
    pytest.param(":red[alarm]", "\\:\u2060red\\[alarm\\]", id="colour-directive"),
    pytest.param(":material/home:", "\\:\u2060material/home\\:", id="material-icon"),
    pytest.param(":smile: :+1:", "\\:\u2060smile\\: \\:\u2060\\+1\\:", id="emoji-shortcode"),
    pytest.param("12:30", "12\\:\u206030", id="clock"),
    pytest.param("a\nb\r\nc", "a b c", id="one-line"),
    pytest.param("nul\x00bell\x07", "nulbell", id="control-characters"),
    pytest.param("http://x.test", "http\\:\u2060//x\\.test", id="bare-url-not-autolinked"),
    pytest.param("www.x.test", "www\u2060\\.x\\.test", id="www-not-autolinked"),
    pytest.param("a@x.test", "a@\u2060x\\.test", id="email-not-autolinked"),
]


@pytest.mark.parametrize(("raw", "markdown"), ROWS)
def test_as_text(raw: str, markdown: str) -> None:
    assert as_text(raw) == markdown


@pytest.mark.parametrize(
    "raw",
    [
        "e-Albania (portal) #1",
        "![p](http://127.0.0.1:9/pixel.png) [click](http://127.0.0.1:9/x)",
        "<img src=http://127.0.0.1:9/i.png> <script>alert(1)</script> &amp;",
        ":red[alarm] :material/home: :smile: $x$ $$y$$ ~~s~~ **b** __u__",
        "| a | b |\\ `c` {d} +e -f .g !h =i ^j 'k' \"l\"",
        "www.x.test a@x.test https://x.test",
    ],
)
def test_as_text_shows_exactly_what_came(raw: str) -> None:
    """Nothing left that could be markup (tests.dashboard.markup.shown refuses that), and
    nothing lost."""
    assert shown(as_text(raw)) == raw
