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
# GitHub-flavoured Markdown links bare URLs, www. names and e-mail addresses after parsing,
# escapes or not; an invisible word joiner inside each breaks the pattern, not the text.
_AUTOLINKS = re.compile(r"(?i)(:)(//)|(www)(\.)|(@)(\w)")
_WORD_JOINER = "\u2060"


def as_text(value: object) -> str:
    """`value` as literal text in a Markdown element: specials escaped, one line."""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = "".join(ch for ch in text if ch == " " or ch.isprintable())
    text = _AUTOLINKS.sub(lambda m: _WORD_JOINER.join(g for g in m.groups() if g), text)
    return _SPECIAL.sub(r"\\\1", text)
