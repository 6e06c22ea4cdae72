"""The container image's recipe (issue 14): no Docker engine runs here, so what makes it
fit for Kubernetes is checked in the files themselves; the lock file's install was run
by hand (the closing note of issue 14 says how)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_it_runs_as_a_numeric_non_root_user() -> None:
    users = [arg for op, arg in instructions() if op == "USER"]
    assert users, "the image sets its user"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()  # runAsNonRoot can check a number only
    assert int(uid) != 0
    assert gid.isdigit()


def test_the_base_image_is_pinned_and_dependencies_have_a_layer_of_their_own() -> None:
    [image] = re.findall(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image)
    ops = instructions()
    copies = [arg for op, arg in ops if op == "COPY"]
    lock = next(i for i, c in enumerate(copies) if "requirements.lock" in c)
    code = next(i for i, c in enumerate(copies) if c.startswith("gateway"))
    assert lock < code  # a code change reuses the dependency layer
    assert any("--require-hashes" in arg for op, arg in ops if op == "RUN")


def test_the_build_context_leaves_out_the_virtualenv_and_payloads() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "var", ".git"} <= ignored


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "requirements.lock").read_text()
    pins = {canonicalize_name(m[0]): m[1]
            for m in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}
    for entry in project["dependencies"]:
        wanted = Requirement(entry)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it"
        assert wanted.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {entry}"
    blocks = re.split(r"\n(?=[A-Za-z])", text.split("\n", 5)[-1].strip())
    assert all("--hash=sha256:" in b for b in blocks if "==" in b)
