"""The session: append-only event log (SQLite), broadcast bus, and the live pipeline that feeds it."""
