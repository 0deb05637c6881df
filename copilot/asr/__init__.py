"""Streaming speech recognition on faster-whisper: VAD, commit policy, model provisioning."""
