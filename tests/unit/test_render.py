"""The compose definition: golden files, determinism, no secrets, `$` escaping, labels, ports, dependencies."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.core.errors import ConfigError
from devenv.project.discovery import Project, load_project
from devenv.project.envfile import read_env
from tests.fixtures.helpers import (
    GOLDEN,
    GOLDEN_CASES,
    PASSWORD,
    build_of,
    check_of,
    copy_project,
    golden_project,
    render_of,
    tree,
    write_of,
)


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    project, _ = golden_project(case, tmp_path)
    text = render_of(project)
    golden = GOLDEN / f"{case}.compose.yml"
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {case}; run pytest --update-golden"
    assert text == golden.read_text()


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_same_inputs_give_identical_bytes_anywhere(case: str, tmp_path: Path) -> None:
    first, _ = golden_project(case, tmp_path / "a")
    second, _ = golden_project(case, tmp_path / "b" / "deeper")
    assert render_of(first) == render_of(first) == render_of(second)
    assert str(tmp_path) not in render_of(first)


def services(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(render_of(project))
    return data


def test_services_dependencies_and_healthchecks(example: Project) -> None:
    data = services(example)
    svc = data["services"]
    assert sorted(svc) == ["migrate", "postgres", "redis", "server"]
    assert svc["server"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert svc["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert svc["migrate"]["command"] == ["npx", "prisma", "migrate", "deploy"]
    assert svc["migrate"]["image"] == svc["server"]["image"] == "quotes-server:devenv"
    assert svc["migrate"]["restart"] == "no"
    pg = svc["postgres"]["healthcheck"]
    assert "pg_isready" in pg["test"][1] and "-h 127.0.0.1" in pg["test"][1]
    for name in ("postgres", "redis", "server"):
        check = svc[name]["healthcheck"]
        assert (check["interval"], check["start_interval"]) == ("10s", "250ms") and check["start_period"]
    assert svc["redis"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "redis-cli -h 127.0.0.1 -p 6379 ping" in svc["redis"]["healthcheck"]["test"][1]
    assert "fetch('http://127.0.0.1:3000/health')" in svc["server"]["healthcheck"]["test"][3]
    # Each check retries inside the container (every 100 ms, for 3 s) and ends before its 5 s timeout.
    for name in ("postgres", "redis"):
        script = svc[name]["healthcheck"]["test"][1]
        assert "sleep 0.1" in script and '[ "$$i" -ge 30 ] && exit 1' in script
        assert svc[name]["healthcheck"]["timeout"] == "5s"
        unescaped = script.replace("$$", "$")
        assert subprocess.run(["sh", "-n", "-c", unescaped], capture_output=True).returncode == 0, unescaped
    assert "Date.now() + 3000" in svc["server"]["healthcheck"]["test"][3]
    assert "--appendonly yes" in svc["redis"]["command"][2]


def test_labels_on_every_service_volume_and_network(example: Project) -> None:
    data = services(example)
    # The checkout's path and machine are the values compose interpolates (devenv passes them): the file names
    # neither.
    label = {
        "devenv.project": "quotes",
        "devenv.checkout": "${DEVENV_CHECKOUT:-}",
        "devenv.machine": "${DEVENV_MACHINE:-}",
        "devenv.machine.name": "${DEVENV_MACHINE_NAME:-}",
    }
    assert data["name"] == "quotes"
    for svc in data["services"].values():
        assert svc["labels"] == label
    assert data["volumes"] == {"pgdata": {"labels": label}, "redisdata": {"labels": label}}
    assert data["networks"] == {"default": {"labels": label}}
    assert data["services"]["server"]["build"]["labels"] == label


def test_ports_on_loopback_and_ephemeral(tmp_path: Path) -> None:
    project, _ = golden_project("ci-ephemeral", tmp_path)
    svc = services(project)["services"]
    assert svc["postgres"]["ports"] == ["127.0.0.1::5432"]
    assert svc["redis"]["ports"] == ["127.0.0.1::6379"]
    assert svc["server"]["ports"] == ["127.0.0.1::3000"]
    project, _ = golden_project("custom", tmp_path)
    svc = services(project)["services"]
    assert svc["postgres"]["ports"] == ["127.0.0.1:15432:5432"]
    assert svc["server"]["ports"] == ["127.0.0.1:8080:8080"]


def test_build_and_mounts_relative_to_the_compose_file(tmp_path: Path) -> None:
    project, _ = golden_project("custom", tmp_path)
    server = services(project)["services"]["server"]
    assert server["build"] == {
        "args": {"APP_VERSION": "7", "NODE_IMAGE": "node:22-slim"},
        "context": "../services/api",
        "dockerfile": "Dockerfile",
        "labels": {
            "devenv.project": "shop",
            "devenv.checkout": "${DEVENV_CHECKOUT:-}",
            "devenv.machine": "${DEVENV_MACHINE:-}",
            "devenv.machine.name": "${DEVENV_MACHINE_NAME:-}",
        },
    }
    assert server["volumes"][0] == {
        "type": "bind",
        "source": "../services/api/src",
        "target": "/srv/src",
        "read_only": True,
    }
    assert server["env_file"] == [
        "../services/api/.env",
        "${DEVENV_SECRETS:?run this stack through devenv (it sets DEVENV_SECRETS)}/server.env",
    ]
    root_relative = yaml.safe_load(render_of(project, base_dir=project.root))["services"]["server"]
    assert root_relative["env_file"][0] == "services/api/.env"  # the generated one is outside the project


def test_stand_in_images_come_from_the_environment(tmp_path: Path) -> None:
    project, _ = golden_project("ci-ephemeral", tmp_path)
    svc = services(project)["services"]
    assert svc["postgres"]["image"] == "devenv-local/postgres:15"
    assert svc["redis"]["image"] == "devenv-local/redis:7"
    assert svc["server"]["build"]["args"] == {"NODE_IMAGE": "devenv-local/node:20"}
    assert project.compose_file == project.root / ".devenv" / "stacks" / "ci-run-42" / "compose.yml"


def test_every_dollar_is_escaped(tmp_path: Path) -> None:
    project, _ = golden_project("dollar", tmp_path)
    text = render_of(project)
    # Every dollar is doubled but the ones compose is meant to interpolate: the checkout and machine labels.
    rest = text.replace("$$", "").replace("${DEVENV_CHECKOUT:-}", "")
    rest = rest.replace("${DEVENV_MACHINE:-}", "").replace("${DEVENV_MACHINE_NAME:-}", "")
    rest = rest.replace("${DEVENV_SECRETS:?run this stack through devenv (it sets DEVENV_SECRETS)}", "")
    assert re.search(r"\$", rest) is None and text.count("${DEVENV_CHECKOUT:-}") >= 5
    svc = yaml.safe_load(text)["services"]
    assert svc["server"]["build"]["args"]["GREETING"] == "costs $$5 or $${PRICE}"
    assert svc["migrate"]["command"] == ["sh", "-c", "echo $$HOME && npx prisma migrate deploy"]


def test_write_compose_files_modes_and_no_secrets(example: Project) -> None:
    result = write_of(example, environ={})
    state = example.state_dir
    assert result.path == example.compose_file and result.changed
    assert (state / ".gitignore").read_text().splitlines()[-1] == "*"
    for name in ("postgres.env", "redis.env", "server.env"):
        assert stat.S_IMODE((example.secrets_dir / name).stat().st_mode) == 0o600
        assert not (state / name).exists()  # never inside the project: it would reach a build context and an image
    assert stat.S_IMODE(example.secrets_dir.stat().st_mode) == 0o700
    assert result.env is not None and result.env.generated
    values = read_env(example)
    compose_text = example.compose_file.read_text()
    for key in result.env.generated:
        assert values[key] not in compose_text, key
    assert values["POSTGRES_PASSWORD"] in (example.secrets_dir / "postgres.env").read_text()
    server_env = (example.secrets_dir / "server.env").read_text()
    assert "@postgres:5432/quotes?schema=public" in server_env and "@redis:6379/0" in server_env


def test_write_compose_is_idempotent_and_digest_follows_env(example: Project) -> None:
    first = write_of(example, environ={})
    second = write_of(example, environ={})
    assert not second.changed and second.digest == first.digest
    text = example.env_file.read_text().replace("POSTGRES_PASSWORD=", "POSTGRES_PASSWORD=x", 1)
    example.env_file.write_text(text)
    third = write_of(example, environ={})
    assert third.changed and third.digest != first.digest
    assert example.compose_file.read_text() == render_of(example)  # compose text does not depend on .env


def test_password_with_dollar_reaches_the_env_files_literally(tmp_path: Path) -> None:
    project = load_project(copy_project("example", tmp_path / "quotes"), environ={})
    project.env_file.write_text(f"POSTGRES_PASSWORD={PASSWORD}\nREDIS_PASSWORD='{PASSWORD}'\n")
    write_of(project, environ={})
    for name in ("postgres.env", "server.env"):
        assert f"POSTGRES_PASSWORD='{PASSWORD}'" in (project.secrets_dir / name).read_text()
    assert f"REDISCLI_AUTH='{PASSWORD}'" in (project.secrets_dir / "redis.env").read_text()
    assert PASSWORD not in project.compose_file.read_text()


def test_empty_postgres_password_is_refused(tmp_path: Path) -> None:
    project = load_project(copy_project("example", tmp_path / "quotes"), environ={})
    project.env_file.write_text("POSTGRES_PASSWORD=\n")
    with pytest.raises(ConfigError, match="POSTGRES_PASSWORD is empty") as err:
        write_of(project, environ={})
    assert "devenv env" in (err.value.hint or "")
    assert not project.state_dir.exists()


def test_without_a_dockerfile_only_the_databases_are_in_containers(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    (root / "apps" / "server" / "Dockerfile").unlink()
    services = build_of(load_project(root, environ={}))["services"]
    assert set(services) == {"postgres", "redis"}  # type: ignore[call-overload]


def test_a_dockerfile_or_context_named_in_devenv_toml_must_exist(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    (root / "devenv.toml").write_text('name = "q"\n\n[server]\ndockerfile = "apps/server/Dockerfile.dev"\n')
    with pytest.raises(ConfigError, match=r"devenv\.toml:4: server\.dockerfile = 'apps/server/Dockerfile.dev'"):
        build_of(load_project(root, environ={}))
    (root / "devenv.toml").write_text('[server]\ncontext = "nope"\n')
    with pytest.raises(ConfigError, match=r"devenv\.toml:2: server\.context = 'nope'"):
        build_of(load_project(root, environ={}))


def test_missing_template_is_refused_by_render(tmp_path: Path) -> None:
    root = copy_project("custom", tmp_path / "custom")
    (root / "services" / "api" / ".env.template").unlink()
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match="the template is missing"):
        write_of(load_project(root, environ={}), environ={})
    assert tree(tmp_path) == before


def test_check_of(example: Project) -> None:
    target = example.root / "docker-compose.yml"
    assert check_of(example, target).stale
    write_of(example, target, environ={})
    assert not check_of(example, target).stale
    target.write_text(target.read_text().replace("10s", "5s"))
    result = check_of(example, target)
    assert result.stale and "-      interval: 5s" in result.diff and "+      interval: 10s" in result.diff


def test_a_ci_stack_builds_an_image_of_its_own_never_one_another_checkout_or_stack_tags(tmp_path: Path) -> None:
    """Two clones in folders of the same name: their CI stacks and their own stacks each tag a server image of their
    own (a shared `<folder>-server:devenv` let one clone's CI build and teardown replace and remove the other's)."""
    from devenv.commands.ci import ci_project

    images = []
    for clone in ("a", "b"):
        project = load_project(copy_project("example", tmp_path / clone / "quotes"), environ={})
        for stack in (project, ci_project(project, f"ci-{clone}")):
            svc = services(stack)["services"]
            assert svc["server"]["image"] == svc["migrate"]["image"]
            images.append(svc["server"]["image"])
    assert images[1] == "ci-a-server:devenv" and images[3] == "ci-b-server:devenv"
    assert len(set(images[1::2])) == 2 and set(images[1::2]).isdisjoint(images[0::2])
