"""docker compose accepts every rendered file; secrets stay out of them; `$` survives end to end."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devenv.project.discovery import load_project
from devenv.project.envfile import read_env
from tests.fixtures.helpers import (
    GOLDEN,
    GOLDEN_CASES,
    PASSWORD,
    clean_environ,
    copy_project,
    golden_project,
    write_of,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environ(monkeypatch)


def compose(file: Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    from devenv.core.state import secrets_dir

    env = {**os.environ, "DEVENV_SECRETS": str(secrets_dir(file.parent))}  # what devenv gives compose
    done = subprocess.run(
        ["docker", "compose", "-f", str(file), *args], capture_output=True, text=True, timeout=timeout, check=False,
        env=env,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"docker compose {' '.join(args)}: {done.stderr}"
    return done


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_compose_accepts_every_golden_file(case: str, tmp_path: Path) -> None:
    project, environ = golden_project(case, tmp_path)
    result = write_of(project, environ=environ)
    golden = (GOLDEN / f"{case}.compose.yml").read_text()
    assert result.path.read_text() == golden  # the file devenv runs is the golden file, byte for byte
    compose(result.path, "config", "-q")


def test_compose_accepts_the_examples_rendered_file(tmp_path: Path) -> None:
    project = load_project(copy_project("example", tmp_path / "monorepo"), environ={})
    result = write_of(project, environ={})
    compose(result.path, "config", "-q")
    services = json.loads(compose(result.path, "config", "--format", "json").stdout)["services"]
    assert sorted(services) == ["migrate", "postgres", "redis", "server"]
    assert services["server"]["environment"]["DATABASE_URL"].startswith("postgresql://app:")
    assert "@postgres:5432/quotes" in services["server"]["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_no_generated_secret_in_rendered_files(case: str, tmp_path: Path) -> None:
    project, environ = golden_project(case, tmp_path)
    result = write_of(project, environ=environ)
    assert result.env is not None and result.env.generated
    values = read_env(project)
    rendered = result.path.read_text()
    for key in result.env.generated:
        assert len(values[key]) >= 43
        assert values[key] not in rendered, f"{key} leaked into {result.path}"


def test_dollar_password_reaches_the_containers(tmp_path: Path, images: dict[str, str]) -> None:
    name = f"devenv-test-{secrets.token_hex(3)}"
    root = copy_project("example", tmp_path / "quotes")
    (root / "apps/server/.env").write_text(f"POSTGRES_PASSWORD={PASSWORD}\nREDIS_PASSWORD='{PASSWORD}'\n")
    environ = {
        "DEVENV_PROJECT_NAME": name,
        "DEVENV_POSTGRES_IMAGE": images["postgres"],
        "DEVENV_REDIS_IMAGE": images["redis"],
        "DEVENV_POSTGRES_PORT": "0",
        "DEVENV_REDIS_PORT": "0",
        "DEVENV_SERVER_PORT": "0",
    }
    project = load_project(root, environ=environ)
    file = write_of(project, environ={}).path
    assert PASSWORD not in file.read_text()

    # What the server container gets (compose re-escapes `$` as `$$` in its output).
    server_env = json.loads(compose(file, "config", "--format", "json").stdout)["services"]["server"]["environment"]
    assert server_env["POSTGRES_PASSWORD"].replace("$$", "$") == PASSWORD
    assert urlsplit(server_env["DATABASE_URL"]).hostname == "postgres"

    try:
        # A throwaway container prints the environment it really gets.
        env_out = compose(file, "run", "--rm", "--no-deps", "-T", "--entrypoint", "env", "postgres").stdout
        assert f"POSTGRES_PASSWORD={PASSWORD}" in env_out.splitlines()
        compose(file, "up", "-d", "--wait", "postgres", "redis", timeout=180)
        pg_port = int(compose(file, "port", "postgres", "5432").stdout.strip().rsplit(":", 1)[1])
        redis_port = int(compose(file, "port", "redis", "6379").stdout.strip().rsplit(":", 1)[1])
        import psycopg
        import redis

        from tests.fixtures.helpers import settings_of as stack_settings

        settings = stack_settings(project, {})
        with psycopg.connect(settings.database_url("127.0.0.1", pg_port, query=False), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("app",)
        client = redis.Redis.from_url(settings.redis_url("127.0.0.1", redis_port), socket_timeout=5)
        assert client.ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=5).ping()
        inspect = subprocess.run(
            ["docker", "inspect", f"{name}-redis-1", "--format", "{{json .Config.Cmd}} {{json .Config.Labels}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert PASSWORD not in inspect and f'"devenv.project":"{name}"' in inspect
    finally:
        compose(file, "down", "-v", "--remove-orphans", check=False)
