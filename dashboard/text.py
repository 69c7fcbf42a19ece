"""Strings from the network or the config, made safe for Streamlit's Markdown elements.

st.error, st.markdown, st.header, st.caption and friends render Markdown plus Streamlit's
own directives (`:red[...]`, `:material/icon:`, emoji shortcodes, `$LaTeX$`). A target
name, a certificate issuer or a hint is data: `![p](http://host/pixel.png)` in an issuer
made the operator's browser fetch that pixel. Everything such a string could use to
become markup is escaped, so it shows exactly as it came.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the
# ones that start or end markup, HTML, directives or math in Streamlit's renderer.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&=\"'^])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# Some markup is found in the text after parsing, where escapes are gone: GitHub-flavoured
# Markdown's bare URLs, www. names and e-mail addresses, and Streamlit's :material/icon:
# and emoji :shortcodes:. An invisible word joiner after the colon, the www or the @
# breaks each pattern, not the text.
_FOUND_AFTER_PARSING = re.compile(r"(?i)(?<=:)(?=[\w+\-/])|(?<=www)(?=\.)|(?<=@)(?=\w)")
_WORD_JOINER = "\u2060"


def as_text(value: object) -> str:
    """`value` as literal text in a Markdown element: specials escaped, one line."""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = "".join(ch for ch in text if ch == " " or ch.isprintable())
    text = _FOUND_AFTER_PARSING.sub(_WORD_JOINER, text)
    return _SPECIAL.sub(r"\\\1", text)
