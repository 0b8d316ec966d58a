"""`devenv init`'s detectors one by one: each gets what it looks at and yields its choices and findings."""

from __future__ import annotations

from pathlib import Path

from devenv.commands import init
from devenv.commands.init import Choice
from devenv.project.config import ServerConfig
from devenv.project.dockerfile import parse
from devenv.project.extras import ExtraService
from devenv.project.nodeapp import NodeApp
from devenv.project.prisma import PrismaSetup
from devenv.project.services import Stack

DOCKERFILE = """FROM node:20-alpine AS dev
FROM dev AS build
CMD npx prisma migrate deploy && node dist/main.js
"""


def keys(part: object) -> list[tuple[str, str, bool]]:
    return [(c.table, c.key, c.active) for c in part if isinstance(c, Choice)]


def test_the_server_folder_is_written_only_when_it_is_not_the_default() -> None:
    app = NodeApp(path=Path("apps/api/package.json"))
    api = list(init._server_folder(ServerConfig(path="apps/api"), ".env.example", app))
    assert keys(api) == [("server", "path", True), ("server", "template", False)]
    assert api[0].why == "the env template .env.example is there beside package.json"
    assert keys(init._server_folder(ServerConfig(), ".env", NodeApp(path=None)))[0] == ("server", "path", False)


def test_without_a_dockerfile_only_its_absence_is_noted() -> None:
    srv = ServerConfig()
    assert [c.why[:14] for c in init._dockerfile(None, srv)] == ["there is none:"]
    for detector in (init._base_image, init._dev_stage):
        assert list(detector(None)) == []
    assert list(init._server_command(None, NodeApp(path=None))) == []


def test_a_dockerfile_yields_its_base_image_a_command_that_does_not_migrate_and_its_dev_stage() -> None:
    dockerfile = parse(Path("Dockerfile"), DOCKERFILE)
    assert keys(init._dockerfile(dockerfile, ServerConfig())) == [
        ("server", "dockerfile", False),
        ("server", "context", False),
    ]
    assert [(c.key, c.value) for c in init._base_image(dockerfile)] == [("node:20-alpine", "node:20-alpine")]
    with_start = NodeApp(path=None, scripts={"start": "node dist/main.js"})
    assert [c.value for c in init._server_command(dockerfile, with_start)] == [["npm", "start"]]
    assert [c.value for c in init._server_command(dockerfile, NodeApp(path=None))] == [["node", "dist/main.js"]]
    assert [c.value for c in init._dev_stage(dockerfile)] == ["dev"]


def test_the_container_port_comes_from_the_first_port_key_of_the_template() -> None:
    srv = ServerConfig()
    assert keys(init._container_port({"HTTP_PORT": "4000", "APP_PORT": "5000"}, srv, ".env")) == [
        ("server", "container_port", True)
    ]
    assert keys(init._container_port({"PORT": "3000"}, srv, ".env")) == [("server", "container_port", False)]
    assert list(init._container_port({"PORT": "${X}"}, srv, ".env")) == []


def test_health_routes_become_ready_health_and_status_paths() -> None:
    srv = ServerConfig()
    part = list(init._health(["/api/health/ready", "/api/health", "/api/livez"], srv))
    assert [(c.key, c.value, c.active) for c in part] == [
        ("ready_path", "/api/health/ready", True),
        ("health_path", "/api/livez", False),
        ("status_path", "", False),
    ]
    assert keys(init._health(["/health/ready", "/health/status"], srv)) == [("server", "ready_path", False)]
    assert [str(p)[:15] for p in init._health([], srv)] == ["no health route"]


def test_migrations_and_seed() -> None:
    schema = PrismaSetup(Path("prisma/schema.prisma"), None, 0, None, None)
    assert [c.value[:4] for c in init._migrate_command(schema)] == [["npx", "prisma", "db", "push"]]
    assert list(init._migrate_command(PrismaSetup(Path("s"), Path("m"), 2, None, None))) == []
    assert list(init._migrate_command(PrismaSetup(None, None, 0, None, None))) == []
    seeded = PrismaSetup(Path("s"), Path("m"), 2, "package.json prisma.seed", None)
    [seed] = init._seed(seeded, ("npx", "prisma", "db", "seed"))
    assert isinstance(seed, Choice) and seed.value == ["npx", "prisma", "db", "seed"] and not seed.active
    assert seed.why == "the seed is configured in package.json prisma.seed"


def test_a_compose_file_offers_its_images_and_the_extras_devenv_knows() -> None:
    services = {
        "db": {"image": "postgres:15"},
        "cache": {"image": "redis:6"},
        "mail": {"image": "axllent/mailpit", "ports": ["127.0.0.1:8025:8025/tcp"], "environment": ["A=1", "B=$X"]},
        "web": {"image": "nginx"},
    }
    part = list(init._compose(Path("compose.yaml"), services))
    choices = [(c.table, c.key, c.value) for c in part if isinstance(c, Choice)]
    assert choices == [
        ("postgres", "image", "postgres:15"),
        ("redis", "image", "redis:6"),
        ("services.mail", "image", "axllent/mailpit"),
        ("services.mail", "ports", ["8025:8025"]),
        ("services.mail", "ready", "http:/livez"),
        ("services.mail", "environment", {"A": "1"}),
    ]
    assert [p for p in part if isinstance(p, str)] == [
        "compose.yaml has mail: proposed as [services.*] tables below.",
        "compose.yaml also has web: devenv does not run it.",
    ]
    assert list(init._compose(None, {})) == []


def test_a_worker_script_is_proposed_noted_or_recognised() -> None:
    app = NodeApp(path=None, scripts={"start:worker": "node worker.js"})
    root = Path("/nonexistent")
    proposed = list(init._worker(app, root, None, (), Stack()))
    assert keys(proposed) == [("services.worker", k, True) for k in ("from", "command", "ready")]
    assert proposed[-1] == "package.json has a `start:worker` script: proposed as [services.worker]."
    worker = ExtraService(name="jobs", from_server=True, command=("npm", "run", "start:worker"))
    assert list(init._worker(app, root, None, (worker,), Stack())) == [
        "package.json's `start:worker` script runs as [services.jobs]."
    ]
    [note] = init._worker(app, root, None, (), Stack(services=("postgres",)))  # no server in the stack
    assert note == (
        "package.json has a `start:worker` script (a second process, e.g. a queue worker): "
        "run it beside the server with `npm run start:worker`."
    )
    assert list(init._worker(NodeApp(path=None), root, None, (), Stack())) == []


def test_propose_runs_the_detectors_in_order(tmp_path: Path) -> None:
    from devenv.project.discovery import load_project
    from tests.fixtures.helpers import context_of, copy_project

    root = copy_project("apps-api", tmp_path / "shop")
    choices, findings = init.propose(context_of(load_project(root, environ={})))
    server = ["path", "template", "dockerfile", "context"]
    assert [(c.table, c.key) for c in choices] == [
        *(("server", key) for key in server),
        ("images", "node:20-alpine"),
        *(("server", key) for key in ("command", "target", "container_port", "ready_path", "health_path")),
        ("server", "status_path"),
        ("migrate", "command"),
        ("migrate", "seed_command"),
        ("redis", "enabled"),
        ("postgres", "image"),
        ("redis", "image"),
        *(("services.mail", key) for key in ("image", "ports", "ready")),
        *(("services.worker", key) for key in ("from", "command", "ready")),
    ]
    assert findings == [
        "docker-compose.yml has mail: proposed as [services.*] tables below.",
        "package.json has a `start:worker` script: proposed as [services.worker].",
    ]
