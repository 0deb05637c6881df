"""Package data kept at the top of the checkout is mapped into the installed package.

`web/`, `rubric_tags/` and `models/manifest.json` stay where a reader of the checkout expects them;
an installed copy carries them as `copilot/assets/...` (copilot/config.py finds either). Everything
else about the project is declared in pyproject.toml.
"""

from setuptools import find_packages, setup

ASSETS = {
    "copilot.assets.web": "web",
    "copilot.assets.rubric_tags": "rubric_tags",
    "copilot.assets.models": "models",
}

setup(
    packages=find_packages(include=["copilot", "copilot.*"]) + list(ASSETS),
    package_dir=ASSETS,
    package_data={
        "copilot.audio": ["demo_data/*"],
        "copilot.tagging": ["data/*.jsonl"],
        "copilot.assets.web": ["*"],
        "copilot.assets.rubric_tags": ["*.yaml", "*.yml"],
        "copilot.assets.models": ["manifest.json"],  # never the weights assembled beside it
    },
    include_package_data=False,
)
