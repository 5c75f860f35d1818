"""The operator's files (Dockerfile, deploy/compose.yaml, deploy/haproxy.cfg)
checked offline: no image is pulled or built here, so what can be checked
without Docker is: every file they name exists, they agree with each other,
with the settings and with the HAProxy test, and HAProxy accepts the file
with compose's environment."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from newage.settings import validate_settings
from tests.test_haproxy import CONFIG, HAPROXY

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_dockerfile_copies_files_that_exist_and_runs_as_designed():
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms), froms
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"
    # the package's link to the extension resolves inside the build context
    link = ROOT / "src" / "newage" / "extension"
    assert link.is_symlink() and link.resolve() == ROOT / "extension"
    copied = {shlex.split(rest)[0] for word, rest in steps if word == "COPY"}
    assert "extension" in copied
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "-c requirements.lock" in runs  # installs with the lock as constraints
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ("VOLUME", "/data") in steps
    health = " ".join(rest for word, rest in steps if word == "HEALTHCHECK")
    assert "/readyz" in health
    cmd = [rest for word, rest in steps if word == "CMD"][-1]
    assert '"serve", "--host", "0.0.0.0"' in cmd and '"--data-dir", "/data"' in cmd


def test_the_dockerignore_keeps_out_what_the_image_must_not_carry():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data"} <= set(ignored)


def test_compose_runs_two_processes_behind_haproxy_with_postgres_and_redis():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"newage1", "newage2", "haproxy", "postgres", "redis"}
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert "4000:4000" in services["haproxy"]["ports"]
    for name in ("newage1", "newage2"):
        newage = services[name]
        build = COMPOSE.parent / newage["build"]["context"]
        assert (build / newage["build"]["dockerfile"]).resolve() == DOCKERFILE
        env = newage["environment"]
        assert env["NEWAGE_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["NEWAGE_DATABASE_URL"]
        assert env["NEWAGE_REDIS_URL"].startswith("redis://redis:6379")
        assert [v.split(":")[0] for v in newage["volumes"]] == ["newage-data"]
        assert set(newage["depends_on"]) == {"postgres", "redis"}
    # the file HAProxy reads is the one the HAProxy test runs
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["haproxy"]["volumes"]}
    assert (COMPOSE.parent / mounts["/usr/local/etc/haproxy/haproxy.cfg"]).resolve() == CONFIG
    # HAProxy's backends are the two newage services, on the port they serve
    env = services["haproxy"]["environment"]
    assert {env["NEWAGE_SERVER_1"], env["NEWAGE_SERVER_2"]} == {"newage1:4000", "newage2:4000"}
    subnet = spec["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert services["newage1"]["environment"]["NEWAGE_FORWARDED_ALLOW_IPS"] == f'["{subnet}"]'


def test_compose_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch):
    for key, value in compose()["services"]["newage1"]["environment"].items():
        monkeypatch.setenv(key, value)
    settings = validate_settings({}, "deploy/compose.yaml")
    assert settings.forwarded_allow_ips == ["172.30.0.0/24"]


def test_haproxy_accepts_its_file_with_the_compose_environment():
    if not os.path.exists(HAPROXY):
        pytest.fail(f"haproxy not found ({HAPROXY}): `make test-deps` installs it", pytrace=False)
    env = {**os.environ, **compose()["services"]["haproxy"]["environment"]}
    # newage1/newage2 resolve only inside compose's network: HAProxy starts
    # anyway (init-addr none) and finds them when they do
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout
