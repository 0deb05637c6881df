"""`copilot tags export|import` (a rater's tags as a file) and `copilot calibrate` (agreement)."""

from __future__ import annotations

import argparse
import json
import sys

from copilot.fileio import write_text_atomic


def register(sub: argparse._SubParsersAction) -> None:
    tags = sub.add_parser("tags", help="export or import one rater's tags (calibration)")
    tsub = tags.add_subparsers(dest="tags_command", metavar="ACTION", required=True)

    exp = tsub.add_parser("export", help="print a rater's tags in a session as a tag file (JSON)")
    exp.add_argument("session", metavar="ID")
    exp.add_argument("--rater", required=True, help="rater name (as in the panel's ?rater=)")
    exp.add_argument("-o", "--output", help="write to this file instead of stdout")
    _data_dir(exp)
    exp.set_defaults(handler=cmd_export)

    imp = tsub.add_parser("import", help="add a rater's tag file to a session (all or nothing)")
    imp.add_argument("session", metavar="ID")
    imp.add_argument("file", metavar="FILE", help="tag file written by `copilot tags export` (- for stdin)")
    imp.add_argument("--rater", help="import under this rater name instead of the file's")
    _data_dir(imp)
    imp.set_defaults(handler=cmd_import)

    cal = sub.add_parser("calibrate", help="inter-rater agreement (Cohen's kappa, Krippendorff's alpha)")
    cal.add_argument("session", metavar="ID")
    cal.add_argument("--raters", help="comma-separated raters (alice, human:bob, rules, llm); default: all")
    cal.add_argument("--json", action="store_true", help="print the full report as JSON")
    _data_dir(cal)
    cal.set_defaults(handler=cmd_calibrate)


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="session store directory (default: COPILOT_DATA_DIR or the user data dir)")


def _store(args: argparse.Namespace):
    from copilot.session.store import SessionStore, default_store_path

    return SessionStore(default_store_path(args.data_dir))


def _view(store, session_id: str):
    from copilot.errors import SessionError
    from copilot.session.fold import fold

    if not store.exists(session_id):
        raise SessionError(f"no session {session_id}")
    return fold(store.events(session_id), session_id)


def cmd_export(args: argparse.Namespace) -> int:
    from copilot.review.tags_io import export_tags

    with _store(args) as store:
        doc = export_tags(_view(store, args.session), args.rater)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from copilot.errors import CopilotError, RubricError
    from copilot.review.rubric_info import rubric_tags
    from copilot.review.tags_io import import_tags, read_tag_file

    text, name = read_tag_file(args.file)  # refused past the size limit before it is read whole
    with _store(args) as store:
        info = store.session_info(args.session)
        try:
            ids = set(rubric_tags(info["rubric"]))
        except (CopilotError, ImportError, OSError) as exc:
            raise RubricError(f"cannot check tag ids against rubric {info['rubric']!r}: {exc}") from None
        written = import_tags(store, args.session, text, ids, rater=args.rater, source_name=name)
    n = sum(1 for e in written if e.type == "tag.added")
    rater = next((e.data["details"]["rater"] for e in written if e.type == "status"), "")
    print(f"imported {n} tags from {rater} into session {args.session}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from copilot.review.calibration import calibrate_view, format_report
    from copilot.review.rubric_info import labels

    raters = [r for r in (args.raters or "").split(",") if r.strip()] or None
    with _store(args) as store:
        view = _view(store, args.session)
    cal = calibrate_view(view, raters, labels(view.rubric))
    if args.json:
        print(json.dumps(cal.to_json(), indent=1, ensure_ascii=False))
    else:
        print(format_report(cal))
    return 0
