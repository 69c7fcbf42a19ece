"""The govwatch dashboard: `govwatch dashboard --db PATH` (or `--prometheus URL`).

Started as `python -m streamlit run dashboard/app.py -- --db PATH [--refresh S]`.
Pages live in dashboard/views/ (not pages/: a directory of that name beside the
script switches on Streamlit's older file-based navigation, which runs a page
opened by its URL without this script). This script sets the page up, records
the options for the session and hands over to the selected page.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from dashboard import ui

PAGES = Path(__file__).resolve().parent / "views"

if not isinstance(st.session_state.get(ui.OPTIONS_KEY), ui.DashboardOptions):
    st.session_state[ui.OPTIONS_KEY] = ui.parse_options(sys.argv[1:])
options = ui.options()

navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/public:", default=True),
        st.Page(PAGES / "incidents.py", title="Incidents", icon=":material/emergency:"),
        st.Page(PAGES / "targets.py", title="Targets", icon=":material/lan:"),
        st.Page(PAGES / "target.py", title="Target", icon=":material/search:"),
        st.Page(PAGES / "countries.py", title="Countries", icon=":material/flag:"),
    ],
    position="hidden" if ui.wall_mode() else "top",
)
# After st.navigation: the page's own title would otherwise name the tab.
st.set_page_config(
    page_title=ui.page_title(options, ui.utc_now()),
    page_icon=":material/public:",
    layout="wide",
)
ui.keep_refreshing(options.refresh_s)
navigation.run()
ui.page_footer(options, ui.utc_now())
