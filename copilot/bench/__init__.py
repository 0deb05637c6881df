"""Benchmark commands (`copilot bench ...`): measured figures, not timed tests."""
