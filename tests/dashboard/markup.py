"""What Streamlit's Markdown elements show, read from the Markdown an AppTest captures.

AppTest sees an element's Markdown source, not what the browser draws. `shown` decodes
the escapes dashboard.text.as_text adds and refuses source in which anything could still
be markup, so a page that forgets to escape a string fails here, not only in Chromium.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

from streamlit.testing.v1 import AppTest

# ASCII punctuation that begins or ends markup somewhere in CommonMark, GFM, Streamlit's
# directives (:red[...], :material/icon:, emoji shortcodes) or its LaTeX ($...$); these
# begin nothing: , ; / ? % and @ (which starts an autolink before a word: below).
MARKUP_PUNCTUATION = frozenset(string.punctuation) - set(",;/?%@")
# Found in the text after escapes are processed (GFM's autolinks, Streamlit's
# :material/icon: and emoji :shortcodes:): only a break inside stops them.
FOUND_AFTER_PARSING = re.compile(r"(?i):[\w+\-/]|www\.|@\w")
WORD_JOINER = "\u2060"

# Proto fields Streamlit renders as Markdown: element bodies, labels, help tooltips and the
# options of button groups (segmented controls, pills).
MARKDOWN_FIELDS = frozenset({"body", "label", "help", "content"})
# Elements whose body is shown as it is (st.text, st.code).
PLAIN_TYPES = frozenset({"text", "code"})


def shown(markdown: str) -> str:
    """The text a Markdown element shows, when its source can show nothing but text;
    AssertionError naming the first character that could still be markup."""
    out = []
    escaped = False
    for at, char in enumerate(markdown):
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            assert char not in MARKUP_PUNCTUATION, f"unescaped {char!r} at {at} in {markdown!r}"
            out.append(char)
    assert not escaped, f"a trailing backslash in {markdown!r}"
    text = "".join(out)
    found = FOUND_AFTER_PARSING.search(text)
    assert found is None, f"{found.group()!r} would still become markup in {markdown!r}"
    return text.replace(WORD_JOINER, "")


def _strings(message: Any) -> Iterator[str]:
    for field, value in message.ListFields():
        if field.message_type is not None:
            for item in value if field.is_repeated else (value,):
                yield from _strings(item)
        elif field.name in MARKDOWN_FIELDS and isinstance(value, str):
            yield value


def markdown_strings(app: AppTest) -> list[str]:
    """Every string of the page Streamlit renders as Markdown, wherever it sits."""
    found: list[str] = []
    for root in (app.main, app.sidebar):
        for node in root:
            proto = getattr(node, "proto", None)
            if proto is not None and node.type not in PLAIN_TYPES:
                found.extend(_strings(proto))
    return found
