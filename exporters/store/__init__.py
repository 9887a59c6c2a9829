"""The embedded default store: spans, metrics and alerts in SQLite, and the report and page built on it."""
