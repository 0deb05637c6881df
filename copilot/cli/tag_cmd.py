"""Subcommands of this group (filled in by the owning feature)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
