"""as_text: what came from the network or the config stays text in Streamlit's Markdown."""

from __future__ import annotations

import pytest

from dashboard.text import as_text

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
    pytest.param(":red[alarm]", r"\:red\[alarm\]", id="colour-directive"),
    pytest.param(":material/home:", r"\:material/home\:", id="material-icon"),
    pytest.param("a\nb\r\nc", "a b c", id="one-line"),
    pytest.param("nul\x00bell\x07", "nulbell", id="control-characters"),
    pytest.param("http://x.test", "http\\:\u2060//x\\.test", id="bare-url-not-autolinked"),
    pytest.param("www.x.test", "www\u2060\\.x\\.test", id="www-not-autolinked"),
    pytest.param("a@x.test", "a@\u2060x\\.test", id="email-not-autolinked"),
]


@pytest.mark.parametrize(("raw", "markdown"), ROWS)
def test_as_text(raw: str, markdown: str) -> None:
    assert as_text(raw) == markdown
