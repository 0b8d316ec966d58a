"""devenv.toml: defaults, every key, environment overrides, and each bad input with file:line and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.core.errors import ConfigError
from devenv.project.config import (
    DEFAULT_POSTGRES_IMAGE,
    DEFAULT_REDIS_IMAGE,
    IMAGE_RE,
    Config,
    Mount,
    env_overrides,
    find_key_line,
    load_config,
)
from tests.fixtures.helpers import FIXTURES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devenv.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_monorepo_layout() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.postgres.image == DEFAULT_POSTGRES_IMAGE == "postgres:16-alpine"
    assert config.redis.image == DEFAULT_REDIS_IMAGE == "redis:7-alpine"
    assert (config.postgres.port, config.redis.port, config.server.port) == (5432, 6379, 3000)
    srv = config.server
    assert (srv.path, srv.dockerfile, srv.context) == ("apps/server", "apps/server/Dockerfile", ".")
    assert (srv.container_port, srv.health_path, srv.ready_path, srv.status_path) == (
        3000,
        "/health",
        "/health/ready",
        "/health/status",
    )
    assert config.migrate.command == ("npx", "prisma", "migrate", "deploy")
    assert config.migrate.seed_command is None  # decided from the project: `npx prisma db seed` when it has a seed
    assert config.migrate.status_command == ("npx", "prisma", "migrate", "status")


def test_every_key_of_the_custom_fixture() -> None:
    config = load_config(FIXTURES / "custom" / "devenv.toml", {})
    assert config.name == "shop"
    assert config.postgres.image.startswith("registry.example.com:5000/db/postgres:16.3@sha256:")
    assert config.postgres.port == 15432
    assert (config.redis.image, config.redis.port) == ("redis:7.2", 16379)
    srv = config.server
    assert (srv.path, srv.context, srv.dockerfile) == ("services/api", "services/api", "services/api/Dockerfile")
    assert (srv.port, srv.container_port) == (8080, 8080)
    assert (srv.health_path, srv.ready_path, srv.status_path) == ("/healthz", "/readyz", "/statusz")
    assert srv.build_args == {"APP_VERSION": "7", "NODE_IMAGE": "node:22-slim"}
    assert srv.mounts == (Mount("services/api/src", "/srv/src", True), Mount("services/api/prisma", "/srv/prisma"))
    assert config.migrate.command == ("npm", "run", "db:migrate")
    assert config.migrate.seed_command == ()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[postgres]\nimage = "postgres:15"\nport = 5433\n[server.build_args]\nNODE_IMAGE = "x:1"\n')
    env = {
        "DEVENV_POSTGRES_IMAGE": "devenv-local/postgres:15",
        "DEVENV_REDIS_IMAGE": "devenv-local/redis:7",
        "DEVENV_POSTGRES_PORT": "0",
        "DEVENV_REDIS_PORT": "16379",
        "DEVENV_SERVER_PORT": "3001",
        "DEVENV_BUILD_ARG_NODE_IMAGE": "devenv-local/node:20",
        "DEVENV_BUILD_ARG_EXTRA": "1",
    }
    config = load_config(path, env)
    assert config.postgres == type(config.postgres)("devenv-local/postgres:15", 0)
    assert config.redis.image == "devenv-local/redis:7" and config.redis.port == 16379
    assert config.server.port == 3001
    assert config.server.build_args == {"EXTRA": "1", "NODE_IMAGE": "devenv-local/node:20"}


def test_empty_environment_values_count_as_unset() -> None:
    config = load_config(None, {"DEVENV_POSTGRES_IMAGE": "", "DEVENV_POSTGRES_PORT": "", "DEVENV_BUILD_ARG_X": ""})
    assert config == Config()


def test_catalogue_lists_the_fixed_variables() -> None:
    assert env_overrides() == {
        "DEVENV_BIND_ADDRESS": "bind_address",
        "DEVENV_POSTGRES_IMAGE": "postgres.image",
        "DEVENV_POSTGRES_PORT": "postgres.port",
        "DEVENV_REDIS_IMAGE": "redis.image",
        "DEVENV_REDIS_PORT": "redis.port",
        "DEVENV_SERVER_PORT": "server.port",
        "DEVENV_SERVER_MODE": "server.mode",
        "DEVENV_DB_PER_BRANCH": "db.per_branch",
    }


def test_bind_address_is_loopback_unless_asked(tmp_path: Path) -> None:
    assert load_config(None, {}).bind_address == "127.0.0.1"
    assert load_config(None, {"DEVENV_BIND_ADDRESS": "0.0.0.0"}).bind_address == "0.0.0.0"
    with pytest.raises(ConfigError, match="DEVENV_BIND_ADDRESS") as info:
        load_config(None, {"DEVENV_BIND_ADDRESS": "everywhere"})
    assert info.value.hint


def test_migrate_command_as_string_is_split(tmp_path: Path) -> None:
    path = write(tmp_path, "[migrate]\ncommand = \"npx prisma migrate deploy --schema 'a b.prisma'\"\n")
    assert load_config(path, {}).migrate.command == ("npx", "prisma", "migrate", "deploy", "--schema", "a b.prisma")


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[postgres]\nimage = postgres:16\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert f"{path}:2:9: TOML syntax error" in err.value.message
    assert err.value.hint


@pytest.mark.parametrize(
    ("text", "key", "suggestion", "line"),
    [
        ("[postgres]\nprot = 5432\n", "postgres.prot", "postgres.port", 2),
        ("[postgress]\nport = 5432\n", "postgress", "postgres", 1),
        ('\n\nimage = "redis:7"\n', "image", "postgres.image", 3),
        ('[server]\nhealth = "/h"\n', "server.health", "server.health_path", 2),
        ("[migrate]\nseed = []\n", "migrate.seed", "migrate.seed_command", 2),
        ('name = "x"\n[service.worker]\nfrom = "server"\n', "service", "services", 2),  # a sub-table's header
    ],
)
def test_unknown_key_did_you_mean(tmp_path: Path, text: str, key: str, suggestion: str, line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.message == f"{path}:{line}: {key} is not a devenv.toml key."
    assert f"did you mean {suggestion!r}?" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[postgres]\nport = "abc"\n', "postgres.port = 'abc' is not a port number."),
        ("[redis]\nport = 70000\n", "redis.port = 70000 is out of range."),
        ("[server]\nport = -1\n", "server.port = -1 is out of range."),
        ("[server]\ncontainer_port = 0\n", "server.container_port = 0 is out of range."),
        ("[postgres]\nport = 1.5\n", "postgres.port = 1.5 is not a port number."),
    ],
)
def test_bad_port_in_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.message == f"{path}:2: {fragment}"
    assert "65535" in (err.value.hint or "")


@pytest.mark.parametrize("value", ["abc", "65536", "-5", "80.5"])
def test_bad_port_in_environment(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"DEVENV_REDIS_PORT": value})
    assert err.value.message.startswith("DEVENV_REDIS_PORT (overrides redis.port)")


def test_two_services_on_one_host_port(tmp_path: Path) -> None:
    path = write(tmp_path, "[postgres]\nport = 6000\n\n[redis]\nport = 6000\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.message == f"{path}:2: postgres.port and {path}:5: redis.port both publish host port 6000."
    assert "redis.port" in (err.value.hint or "") and "DEVENV_REDIS_PORT" in (err.value.hint or "")


def test_port_clash_with_environment_and_zero_never_clashes() -> None:
    with pytest.raises(ConfigError, match="DEVENV_SERVER_PORT"):
        load_config(None, {"DEVENV_SERVER_PORT": "5432"})
    config = load_config(None, {"DEVENV_POSTGRES_PORT": "0", "DEVENV_REDIS_PORT": "0", "DEVENV_SERVER_PORT": "0"})
    assert (config.postgres.port, config.redis.port, config.server.port) == (0, 0, 0)


@pytest.mark.parametrize(
    "image",
    [
        "postgres:16-alpine",
        "redis",
        "devenv-local/postgres:15",
        "localhost:5000/team/redis:7.2.4",
        "ghcr.io/acme/db@sha256:" + "a" * 64,
        "docker.io/library/node:20-bookworm-slim",
    ],
)
def test_valid_image_references(image: str) -> None:
    assert IMAGE_RE.fullmatch(image)


@pytest.mark.parametrize(
    "image", ["Postgres:16", "postgres:", "postgres:16 alpine", ":16", "a//b", "postgres@sha256:xyz", "-x", ""]
)
def test_invalid_image_reference(tmp_path: Path, image: str) -> None:
    path = write(tmp_path, f'[postgres]\nimage = "{image}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert err.value.message.startswith(f"{path}:2: postgres.image = ")
    assert "not a valid image reference" in err.value.message
    with pytest.raises(ConfigError, match="DEVENV_POSTGRES_IMAGE"):
        load_config(None, {"DEVENV_POSTGRES_IMAGE": image or " "})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[server]\nmounts = ["src"]\n', "server.mounts has 'src'"),
        ('[server]\nmounts = ["src:relative"]\n', "server.mounts has 'src:relative'"),
        ('[server]\nmounts = ["src:/app:rx"]\n', "server.mounts has 'src:/app:rx'"),
        ('[server]\npath = "/abs"\n', "server.path = '/abs' leaves the project."),
        ('[server]\ncontext = "../up"\n', "server.context = '../up' leaves the project."),
        ('[server]\nhealth_path = "health"\n', "server.health_path = 'health' is not a URL path."),
        ("[migrate]\ncommand = []\n", "migrate.command is empty."),
        ("[migrate]\ncommand = 5\n", "migrate.command = 5 is not a command."),
        ('name = "Shop App"\n', "name = 'Shop App' is not a valid compose project name."),
        ("postgres = 5\n", "postgres must be a table."),
        ("[server]\nmode = []\n", "server.mode = [] is not a server mode."),
        ("[server]\nmode = { a = 1 }\n", "server.mode = {'a': 1} is not a server mode."),
    ],
)
def test_other_bad_values(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert fragment in err.value.message
    assert err.value.message.startswith(str(path))
    assert err.value.hint


def test_bad_build_arg_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[server.build_args]\n"BAD-NAME" = "x"\n')
    with pytest.raises(ConfigError, match=r"server\.build_args\.BAD-NAME is not a valid build argument name"):
        load_config(path, {})
    with pytest.raises(ConfigError, match="DEVENV_BUILD_ARG_BAD-X"):
        load_config(None, {"DEVENV_BUILD_ARG_BAD-X": "1"})
    path = write(tmp_path, "[server.build_args]\nFLAG = true\n")
    with pytest.raises(ConfigError, match="must be a string"):
        load_config(path, {})


def test_unreadable_and_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "devenv.toml"
    path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, {})
    path.unlink()
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(path, {})


def test_bom_and_crlf_in_devenv_toml(tmp_path: Path) -> None:
    path = tmp_path / "devenv.toml"
    path.write_bytes(b'\xef\xbb\xbf[postgres]\r\nport = 5433\r\nimage = "postgres:15"\r\n')
    config = load_config(path, {})
    assert (config.postgres.port, config.postgres.image) == (5433, "postgres:15")


def test_find_key_line() -> None:
    text = 'name = "x"\n\n[server]\nport = 1\n[server.build_args]\nA = "1"\n[redis]\nport = 2\n'
    assert find_key_line(text, "name") == 1
    assert find_key_line(text, "server.port") == 4
    assert find_key_line(text, "server.build_args.A") == 6
    assert find_key_line(text, "redis.port") == 8
    assert find_key_line(text, "redis.image") is None


def test_docs_cover_every_key_and_variable() -> None:
    from devenv.core.resources import load_toml
    from devenv.project.config import SCHEMA

    folder = Path(__file__).resolve().parents[2] / "docs"
    docs = "".join((folder / name).read_text() for name in ("configuration.md", "environment.md", "extra-services.md"))
    for table, keys in SCHEMA.items():
        for key, kind in keys.items():
            if kind != "table":
                dotted = f"{table}.{key}" if table else key
                assert f"`{dotted}`" in docs, dotted
    for var, entry in load_toml("env", "variables.toml").items():
        name = str(entry.get("pattern", "")) + "<NAME>" if "pattern" in entry else var
        assert f"`{name}`" in docs, name


def _config_tables() -> list[type]:
    """Config and every table dataclass below it."""
    from dataclasses import fields

    found: list[type] = []
    todo: list[type] = [Config]
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo += [f.default_factory for f in fields(cls) if f.metadata.get("devenv.kind") == "table"]
    return found


def test_every_field_of_the_config_dataclasses_is_a_key_with_a_check() -> None:
    from dataclasses import fields

    from devenv.project import config

    tables = (config.PostgresConfig, config.RedisConfig, config.ServerConfig, config.WatchConfig)
    tables += (config.MigrateConfig, config.ResetConfig, config.DbConfig)
    assert set(_config_tables()) == {Config, *tables}
    for cls in _config_tables():
        for f in fields(cls):
            if cls is Config and f.name in {"source", "pinned", "origins"}:  # what load_config records, no keys
                assert "devenv.kind" not in f.metadata, f.name
            else:
                assert "devenv.kind" in f.metadata, f"{cls.__name__}.{f.name} has no kind"
    kinds = {kind for keys in config.SCHEMA.values() for kind in keys.values()} - {"table"}
    assert kinds == set(config._CHECKS)  # every kind has a check, and every check is some key's


def test_the_schema_follows_the_dataclasses() -> None:
    from devenv.project.config import SCHEMA

    assert list(SCHEMA) == ["", "postgres", "redis", "server", "server.watch", "migrate", "reset", "db"]
    assert SCHEMA["server"]["watch"] == "table"
    assert SCHEMA["server.watch"] == {"sync": "mounts", "rebuild": "relpaths", "migrate": "relpaths"}
    assert list(SCHEMA[""])[-2:] == ["images", "services"] and "source" not in SCHEMA[""]


def _as_toml(kind: str, default: object) -> object:
    """DEFAULT as devenv.toml spells it."""
    if kind == "mounts":
        return [m.spec() for m in default]
    if kind == "services":
        return {}
    return list(default) if isinstance(default, tuple) else default


def test_every_default_passes_its_own_check() -> None:
    """A key's default, written in devenv.toml, is a value its check accepts and returns unchanged."""
    from dataclasses import MISSING, fields

    from devenv.project.config import _convert, _Where

    for cls in _config_tables():
        for f in fields(cls):
            kind = f.metadata.get("devenv.kind")
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if kind in {None, "table"} or default is None:
                continue
            assert _convert(kind, _as_toml(kind, default), f.name, _Where()) == default, f"{cls.__name__}.{f.name}"
