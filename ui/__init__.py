"""Shared Streamlit helpers for the dashboard pages (the `core` library knows nothing of Streamlit)."""
