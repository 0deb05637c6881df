"""The package's import graph (tests/import_graph.py reads it from the source with `ast`): no cycles,
dependencies point down, and `copilot --help` does not pay for the heavy libraries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.import_graph import ROOT, cycles, graph, imports, modules

# Lower numbers sit lower: a module may import its own subpackage or a strictly lower layer.
LAYERS = {
    "errors": -1,
    "config": 0,
    "fileio": 0,
    "events": 0,
    "safejson": 0,
    "actors": -1,  # actors: stdlib only, below events
    "audio": 1,
    "asr": 2,
    "tagging": 2,
    "session": 3,
    "review": 4,
    "server": 5,
    "runtime": 6,  # the composition root
    "bench": 7,
    "cli": 8,  # registers the benchmarks
    "__main__": 9,
    "copilot": 9,
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_package_has_no_import_cycles():
    known = modules()
    found = imports(known)
    assert len(found) > 300  # the graph really was read (about 380 internal imports)
    assert cycles(graph(known, found)) == []


def test_dependencies_point_down():
    known = modules()
    assert {_layer(m) for m in known} <= LAYERS.keys(), "a new subpackage needs a place in LAYERS"
    upward = [
        f"{known[i.importer].relative_to(ROOT)}:{i.line} imports {i.target}"
        for i in imports(known)
        if _layer(i.importer) != _layer(i.target) and LAYERS[_layer(i.target)] >= LAYERS[_layer(i.importer)]
    ]
    assert upward == []


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return modules(tmp_path, "copilot")


def test_a_cycle_through_a_package_init_or_a_function_is_found(tmp_path):
    """The two cycles this package had: bench -> cli.asr_options, whose package's __init__ registers
    the benchmarks; and rules <-> textcat, where both imports sat inside functions."""
    known = _package(
        tmp_path,
        {
            "copilot/__init__.py": "",
            "copilot/cli/__init__.py": "from copilot.cli import bench_cmd\n",
            "copilot/cli/bench_cmd.py": "def register():\n    from copilot.bench import pipeline\n",
            "copilot/cli/asr_options.py": "DEFAULT_MODEL = 'tiny.en'\n",
            "copilot/bench/__init__.py": "",
            "copilot/bench/pipeline.py": "from copilot.cli.asr_options import DEFAULT_MODEL\n",
            "copilot/tagging/__init__.py": "",
            "copilot/tagging/rules.py": "def load():\n    from copilot.tagging.textcat import load_classifier\n",
            "copilot/tagging/textcat.py": "def train():\n    from .rules import RulesTagger\n",
            "copilot/tagging/cues.py": "from copilot.tagging import rules\n",
        },
    )
    found = cycles(graph(known, imports(known, "copilot")))
    assert sorted(found) == [
        ["copilot.bench.pipeline", "copilot.cli", "copilot.cli.bench_cmd"],
        ["copilot.tagging.rules", "copilot.tagging.textcat"],
    ]


def test_importing_the_cli_loads_no_heavy_library():
    """`copilot --help` and argument errors stay instant: spaCy, pydantic, FastAPI, litellm and the
    recognizer are imported by the commands that use them (seconds each, see copilot/cli/__init__.py)."""
    heavy = ["spacy", "pydantic", "fastapi", "uvicorn", "litellm", "faster_whisper", "ctranslate2", "numpy"]
    code = f"import sys, copilot.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
