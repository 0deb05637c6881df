"""Audio sources: everything that yields 16 kHz mono float32 chunks with a speaker label."""

from copilot.audio.base import SAMPLE_RATE, AudioChunk, AudioSource

__all__ = ["SAMPLE_RATE", "AudioChunk", "AudioSource"]
