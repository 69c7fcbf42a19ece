"""govwatch's Streamlit dashboard and its read-only query layer (never imports probes/)."""
