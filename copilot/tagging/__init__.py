"""Rubric-driven tagging of transcript segments: offline rules, LLM, and their hybrid."""
