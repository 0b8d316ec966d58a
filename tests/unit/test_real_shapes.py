"""The shapes real projects come in, with zero configuration: .env.example / .env.sample, apps/api, no Dockerfile,
no Redis, no migrations, a Dockerfile that migrates in its CMD, placeholders real templates use, `devenv init`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devenv.commands.init import init
from devenv.commands.lifecycle import _notes
from devenv.core.errors import ComposeFailed, UsageError
from devenv.project import envfile
from devenv.project.config import load_config
from devenv.project.discovery import load_project
from devenv.project.services import expand_services
from devenv.project.settings import is_placeholder
from devenv.stack.images import pull_failure
from tests.fixtures.helpers import build_of, context_of, copy_project


def test_single_ts_app_with_env_example(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "ts-app")
    project = load_project(root / "src", environ={})  # found from a folder inside it too
    assert project.root == root.resolve() and project.config.server.path == "."
    assert project.env_template.name == ".env.example" and project.env_file == project.root / ".env"
    ctx = context_of(project)
    assert ctx.stack.services == ("postgres", "redis", "server")  # REDIS_URL: redis; no Prisma: no migrate job
    result = envfile.ensure_env(project, {}, redis=ctx.stack.redis)
    values = envfile.read_env(project)
    # The template's URL says who and which database; its placeholder password and JWT secret are replaced.
    assert values["POSTGRES_USER"] == "postgres" and values["POSTGRES_DB"] == "tsapp"
    assert values["POSTGRES_PASSWORD"] not in {"", "password"}
    assert values["DATABASE_URL"] == (
        f"postgresql://postgres:{values['POSTGRES_PASSWORD']}@127.0.0.1:5432/tsapp?schema=public"
    )
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/0"  # no REDIS_PASSWORD in the template: no auth
    assert set(result.generated) == {"POSTGRES_PASSWORD", "JWT_SECRET"}
    assert values["JWT_EXPIRES_IN"] == "7d" and values["PORT"] == "4000"


def test_image_map_builds_a_literal_from_line_from_another_image(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "ts-app")
    env = {"DEVENV_IMAGE_MAP": "node:20-bookworm-slim=devenv-local/node:20, postgres:16-alpine=pg:local"}
    compose = build_of(load_project(root, environ=env))
    build = compose["services"]["server"]["build"]  # type: ignore[index]
    assert build["additional_contexts"] == {"node:20-bookworm-slim": "docker-image://devenv-local/node:20"}
    assert compose["services"]["postgres"]["image"] == "pg:local"  # type: ignore[index]
    with pytest.raises(Exception, match="DEVENV_IMAGE_MAP: 'oops' is not IMAGE=IMAGE"):
        load_project(root, environ={"DEVENV_IMAGE_MAP": "oops"})


def test_monorepo_with_apps_api_env_sample_and_a_dockerfile_built_from_the_root(tmp_path: Path) -> None:
    root = copy_project("apps-api", tmp_path / "shop")
    for start in (root, root / "apps" / "api", root / "apps" / "api" / "src"):
        project = load_project(start, environ={})
        assert project.root == root.resolve() and project.config.server.path == "apps/api"
    assert project.env_template.name == ".env.sample"
    assert project.config.server.context == "."  # the Dockerfile copies apps/api/...: built from the root
    ctx = context_of(project)
    assert ctx.stack.services == ("postgres", "redis", "migrate", "server")
    assert ctx.stack.redis_reason == "the server depends on ioredis"
    assert ctx.seed_command == ("npx", "prisma", "db", "seed")  # package.json prisma.seed
    notes, warnings = _notes(ctx, ctx.stack.services, env_written=True)
    assert any("written from .env.sample" in n for n in notes)
    assert not any("written from" in n for n in _notes(ctx, ctx.stack.services)[0])  # only when this up wrote it
    assert any("docker-compose.yml is not used" in n for n in notes)
    [warning] = warnings
    assert "no Prisma migrations" in warning and "npx prisma migrate dev" in warning
    assert 'migrate.command = "npx prisma db push"' in warning


def test_a_single_app_dockerfile_in_its_folder_is_built_from_that_folder(tmp_path: Path) -> None:
    root = copy_project("apps-api", tmp_path / "shop")
    dockerfile = root / "apps" / "api" / "Dockerfile"
    dockerfile.write_text("FROM node:20-slim\nWORKDIR /app\nCOPY package.json ./\nCOPY src ./src\n")
    assert load_project(root, environ={}).config.server.context == "apps/api"


def test_no_dockerfile_means_the_databases_only_and_a_clear_refusal_for_the_server(tmp_path: Path) -> None:
    root = copy_project("host-app", tmp_path / "host-app")
    project = load_project(root, environ={})
    assert project.config.server.path == "apps/server"  # template + package.json there
    ctx = context_of(project)
    assert ctx.stack.services == ("postgres",)  # no Dockerfile; no REDIS_* key and no Redis client
    with pytest.raises(UsageError, match=r"has no server \(no apps/server/Dockerfile") as info:
        expand_services(["server"], ctx.stack)
    assert "add a Dockerfile" in (info.value.hint or "")
    with pytest.raises(UsageError, match="has no redis"):
        expand_services(["redis"], ctx.stack)
    notes, _ = _notes(ctx, ctx.stack.services)
    assert any("`devenv dev`" in n for n in notes) and any(n.startswith("redis: not in the stack") for n in notes)


def test_redis_can_be_turned_on_or_off(tmp_path: Path) -> None:
    root = copy_project("host-app", tmp_path / "host-app")
    (root / "devenv.toml").write_text("[redis]\nenabled = true\n")
    assert context_of(load_project(root, environ={})).stack.redis
    (root / "devenv.toml").write_text("[redis]\nenabled = false\n")
    shop = copy_project("apps-api", tmp_path / "shop")
    (shop / "devenv.toml").write_text("[redis]\nenabled = false\n")
    assert not context_of(load_project(shop, environ={})).stack.redis


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("", True),
        ("changeme", True),
        ("change_me_to_a_long_random_string", True),
        ("your-super-secret-jwt-key-change-in-production", True),
        ("your_access_secret_here", True),
        ("<set me>", True),
        ("xxx", True),
        ("mysupersecretJWTsecret", True),
        ("password", True),
        ("example-api-key", True),
        ("postgres", False),
        ("tY7uI9oP0aS2dF4gH6jK8lZ1xC3vB5nM", False),
        ("9f8a7b6c5d4e3f2a", False),
    ],
)
def test_the_placeholders_real_templates_use(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder


def test_a_from_image_that_cannot_be_pulled_names_its_dockerfile_line_and_the_map(tmp_path: Path) -> None:
    root = copy_project("ts-app", tmp_path / "ts-app")
    ctx = context_of(load_project(root, environ={}))
    output = (
        "#2 [server internal] load metadata for docker.io/library/node:20-bookworm-slim\n"
        '#2 ERROR: failed to do request: Head "https://registry.invalid/v2/": dial tcp: no such host\n'
        "failed to solve: node:20-bookworm-slim: failed to resolve source metadata for "
        "docker.io/library/node:20-bookworm-slim: no such host\n"
    )
    err = pull_failure(ctx.config, ComposeFailed(["build"], 1, output), ctx.dockerfile)
    assert err is not None and err.message.startswith("Dockerfile:3: `FROM node:20-bookworm-slim AS build`:")
    assert err.hint and "DEVENV_IMAGE_MAP=node:20-bookworm-slim=IMAGE" in err.hint


def test_a_syntax_line_is_named_as_the_buildkit_frontend(tmp_path: Path) -> None:
    root = copy_project("apps-api", tmp_path / "shop")
    ctx = context_of(load_project(root, environ={}))
    output = (
        "#1 resolve image config for docker-image://docker.io/docker/dockerfile:1.7\n"
        "failed to solve: docker/dockerfile:1.7: failed to resolve source metadata for "
        "docker.io/docker/dockerfile:1.7: no such host\n"
    )
    err = pull_failure(ctx.config, ComposeFailed(["build"], 1, output), ctx.dockerfile)
    assert (
        err is not None
        and "Dockerfile:1: `# syntax=docker/dockerfile:1.7` asks BuildKit for the frontend" in err.message
    )
    assert "not the server's base image" not in err.message and "remove the line" in (err.hint or "")


def test_init_writes_a_commented_devenv_toml_that_loads_and_never_overwrites(tmp_path: Path) -> None:
    root = copy_project("apps-api", tmp_path / "shop")
    result = init(context_of(load_project(root, environ={})))
    data = tomllib.loads(result.path.read_text())
    server = data["server"]
    assert server["path"] == "apps/api" and server["container_port"] == 4000  # HTTP_PORT=4000
    assert server["ready_path"] == "/api/health/ready" and "health_path" not in server  # offered, not pinned
    assert server["command"] == ["npm", "start"]  # the image's CMD runs `prisma migrate deploy` again
    assert data["migrate"]["command"][:4] == ["npx", "prisma", "db", "push"]  # no migrations in the project
    text = result.path.read_text()
    assert '# target = "dev"' in text and '# image = "postgres:15-alpine"' in text  # offered, not pinned
    assert '# health_path = "/api/health"' in text and "/health/live" not in text  # a string list is no route
    assert any("start:worker" in f for f in result.findings) and any("mail" in f for f in result.findings)
    load_config(result.path, {})
    with pytest.raises(UsageError, match="never overwrites"):
        init(context_of(load_project(root, environ={})))
    assert init(context_of(load_project(root, environ={})), write=False).text.startswith("# devenv.toml")
