"""`copilot live`, `copilot replay`, `copilot serve`, `copilot sessions list|export|delete|end|refine`."""

from __future__ import annotations

import argparse

from copilot.asr.options import add_asr_arguments
from copilot.fileio import write_text_atomic

SPEAKERS_DEFAULT = "interviewer,candidate"


def register(sub: argparse._SubParsersAction) -> None:
    live = sub.add_parser("live", help="capture, transcribe and tag a call; serve the side panel")
    live.add_argument(
        "--device",
        metavar="NAME",
        default=None,
        help="microphone (the interviewer); name, part of a name or index (`copilot devices`)",
    )
    live.add_argument(
        "--system-device",
        metavar="NAME",
        default=None,
        help="second input carrying the call's audio (the candidate), e.g. a monitor source",
    )
    live.add_argument("--speakers", default=SPEAKERS_DEFAULT, help="names per channel (default %(default)s)")
    live.add_argument(
        "--browser",
        action="store_true",
        help="capture in the browser instead: the start page takes the microphone and the call's "
        "tab audio (no loopback device needed; see docs/capture.md)",
    )
    live.add_argument(
        "--consent-confirmed",
        action="store_true",
        help="the candidate was told about the recording and agreed (else you are asked; "
        "--browser asks on its start page)",
    )
    live.add_argument(
        "--consent-notice",
        metavar="TEXT",
        default=None,
        help="the notice the candidate is given, stored with the confirmation "
        "(default: COPILOT_CONSENT_NOTICE or a built-in one)",
    )
    _pipeline_args(live)
    live.set_defaults(handler=_live)

    replay = sub.add_parser("replay", help="run a recording through the live pipeline, paced as if live")
    replay.add_argument("file", nargs="?", metavar="FILE", help="audio file (any format; stereo = two speakers)")
    replay.add_argument("--demo", action="store_true", help="replay the bundled demo interview")
    replay.add_argument("--speed", type=float, default=1.0, help="pace: 1.0 = real time, 2.0 = twice as fast")
    replay.add_argument(
        "--no-pace",
        action="store_true",
        help="no live pacing: feed the recording as fast as the ASR takes it (scripts, tests)",
    )
    replay.add_argument("--speakers", default=None, help="names per channel (default: interviewer,candidate)")
    replay.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop serving when the replay ends (default: keep serving until Ctrl-C)",
    )
    _pipeline_args(replay)
    replay.set_defaults(handler=_replay)

    serve = sub.add_parser("serve", help="serve stored sessions (review, calibration, panel; new browser captures)")
    _server_args(serve)
    # For captures started from the sessions page ("New interview (browser capture)").
    serve.add_argument("--rubric", default="default", help="rubric for new captures (default %(default)s)")
    add_asr_arguments(serve, device_flag="--asr-device")
    serve.add_argument("--keep-audio", action="store_true", help="keep new captures' audio as FLAC (for review)")
    serve.add_argument(
        "--consent-notice",
        metavar="TEXT",
        default=None,
        help="the notice new captures' start page shows (default: COPILOT_CONSENT_NOTICE or a built-in one)",
    )
    serve.set_defaults(handler=_serve)

    sessions = sub.add_parser("sessions", help="list, export, end, refine, delete or purge stored sessions")
    which = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    ls = which.add_parser("list", help="list sessions, newest first")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.add_argument("--data-dir", metavar="DIR", default=None)
    ls.set_defaults(handler=_sessions_list)
    ex = which.add_parser("export", help="export a session: json (the whole log), md, vtt or srt")
    ex.add_argument("session_id", metavar="ID")
    ex.add_argument("--format", choices=["json", "md", "vtt", "srt"], default="md")
    ex.add_argument("-o", "--output", metavar="FILE", default=None, help="write here (default: stdout)")
    ex.add_argument("--data-dir", metavar="DIR", default=None)
    ex.set_defaults(handler=_sessions_export)
    rm = which.add_parser("delete", help="delete a session, its log and its kept audio")
    rm.add_argument("session_id", metavar="ID")
    rm.add_argument("--data-dir", metavar="DIR", default=None)
    rm.set_defaults(handler=_sessions_delete)
    purge = which.add_parser("purge", help="delete sessions older than a number of days (events and audio)")
    purge.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        default=None,
        help="age in days since the session's last activity (default: the configured retention_days)",
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    purge.add_argument("--data-dir", metavar="DIR", default=None)
    purge.set_defaults(handler=_sessions_purge)
    end = which.add_parser("end", help="close a session left live (e.g. after a crash)")
    end.add_argument("session_id", metavar="ID")
    end.add_argument("--reason", default="closed after interruption")
    end.add_argument("--data-dir", metavar="DIR", default=None)
    end.set_defaults(handler=_sessions_end)
    refine = which.add_parser(
        "refine",
        help="decode an ended session's kept audio again with a bigger model, "
        "as new revisions of its turns (docs/turns.md)",
    )
    refine.add_argument("session_id", metavar="ID")
    refine.add_argument(
        "--model", default="base", help="model name from `copilot models` or a model directory (default %(default)s)"
    )
    refine.add_argument(
        "--asr-device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the ASR runs (default %(default)s: CUDA when available)",
    )
    refine.add_argument("--compute-type", default=None, help="CTranslate2 compute type (default: by device)")
    refine.add_argument("--data-dir", metavar="DIR", default=None)
    refine.set_defaults(handler=_sessions_refine)


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; anything else exposes the panel to your network)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="where the session log lives (default: COPILOT_DATA_DIR or your user data directory)",
    )
    p.add_argument("--no-browser", action="store_true", help="print the panel's URL instead of opening it")


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    _server_args(p)
    p.add_argument("--rubric", default="default", help="rubric name or YAML path (default %(default)s)")
    p.add_argument(
        "--llm",
        metavar="MODEL",
        default=None,
        help="litellm model that refines the rules tags, e.g. openai/gpt-4o-mini, ollama/llama3.1",
    )
    p.add_argument("--api-base", metavar="URL", default=None, help="OpenAI-compatible server for --llm")
    p.add_argument(
        "--redact",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replace emails, phone numbers, URLs and long digit strings by placeholders in text "
        "sent to the LLM (default: on for a remote endpoint, off for one on this machine)",
    )
    add_asr_arguments(p, device_flag="--asr-device")  # --device is the microphone here
    p.add_argument(
        "--no-turns", action="store_true", help="fragments only: do not settle and re-decode turns (docs/turns.md)"
    )
    p.add_argument(
        "--no-echo-gate",
        dest="echo_gate",
        action="store_false",
        help="transcribe both channels as they are, even where one is the other's echo "
        "(default: the echo gate silences the other speaker's leak, see docs/asr.md)",
    )
    p.add_argument(
        "--keep-audio",
        action="store_true",
        help="store the session's audio as FLAC beside the log (for review playback)",
    )
    p.add_argument("--title", default=None, help="session title")
    p.add_argument(
        "--continue",
        dest="continue_id",
        metavar="ID",
        default=None,
        help="append to a session left live by an interrupted run instead of starting a new one",
    )


def _live(args: argparse.Namespace) -> int:
    from copilot.cli.session_run import run_live

    return run_live(args)


def _replay(args: argparse.Namespace) -> int:
    from copilot.cli.session_run import run_replay

    return run_replay(args)


def _serve(args: argparse.Namespace) -> int:
    from copilot.cli.session_run import run_serve

    return run_serve(args)


def _store(args: argparse.Namespace):
    from copilot.session.store import SessionStore, default_store_path

    return SessionStore(default_store_path(args.data_dir))


def _sessions_list(args: argparse.Namespace) -> int:
    import json
    import time

    with _store(args) as store:
        rows = store.list_sessions()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no sessions")
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started_at"]))
        print(f"{r['id']}  {when}  {r['status']:<5}  {r['mode']:<6}  {r['last_seq']:>6} events  {r['title']}")
    return 0


def _sessions_export(args: argparse.Namespace) -> int:
    import sys

    from copilot.review.exports import export_session

    with _store(args) as store:
        store.session_info(args.session_id)  # a clear error for an unknown id
        text = export_session(store.events(args.session_id), args.format)
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
        return 0
    out = write_text_atomic(args.output, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _sessions_delete(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.delete_session(args.session_id)
    print(f"deleted {args.session_id}")
    return 0


def _sessions_end(args: argparse.Namespace) -> int:
    from copilot.session.audio_keeper import recover_recording

    with _store(args) as store:
        store.session_info(args.session_id)  # a clear error for an unknown id
        # A run killed with --keep-audio left its raw recording: it becomes the session's FLAC.
        flac = recover_recording(store.audio_path(args.session_id))
        ev = store.end_session(args.session_id, reason=args.reason)
    print(f"ended {args.session_id} (seq {ev.seq})" + (f"; audio kept in {flac}" if flac else ""))
    return 0


def _sessions_purge(args: argparse.Namespace) -> int:
    import time

    from copilot.config import retention_days
    from copilot.errors import CopilotError
    from copilot.session.retention import purge

    days = args.older_than if args.older_than is not None else retention_days()
    if days is None:
        raise CopilotError("give --older-than DAYS, or set retention_days in the config file (docs/security.md)")
    if not days > 0 or days == float("inf"):
        raise CopilotError(f"--older-than must be more than 0 days, not {days}")
    with _store(args) as store:
        gone = purge(store, days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for e in gone:
        when = time.strftime("%Y-%m-%d", time.localtime(e.last_activity))
        print(f"{verb} {e.session_id}  last active {when} ({e.age_days:.0f} days)  {e.title}")
    print(f"{verb} {len(gone)} session(s) older than {days:g} days")
    return 0


def _sessions_refine(args: argparse.Namespace) -> int:
    import sys

    from copilot.session.refine import refine_session

    with _store(args) as store:
        summary = refine_session(
            store,
            args.session_id,
            model=args.model,
            device=args.asr_device,
            compute_type=args.compute_type,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    print(summary.line())
    return 0
