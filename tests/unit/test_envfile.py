"""`devenv env`: .env from the template, secrets, drift, stack settings, and every bad input."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from dotenv import dotenv_values

from devenv.core.errors import ConfigError
from devenv.project import envfile
from devenv.project.discovery import Project, load_project
from devenv.project.envfile import (
    check_env,
    dotenv_quote,
    ensure_env,
    is_placeholder,
    is_secret_key,
    read_env,
    read_template,
)
from devenv.stack.render import compose_env_quote
from tests.fixtures.helpers import PASSWORD, copy_project, tree
from tests.fixtures.helpers import settings_of as stack_settings

SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43,}")


def make(tmp_path: Path, template: str | bytes, env: str | bytes | None = None) -> Project:
    server = tmp_path / "proj" / "apps" / "server"
    server.mkdir(parents=True)
    (server / ".env.template").write_bytes(template.encode() if isinstance(template, str) else template)
    if env is not None:
        (server / ".env").write_bytes(env.encode() if isinstance(env, str) else env)
    return load_project(tmp_path / "proj", environ={})


def test_new_env_keeps_comments_and_order(example: Project) -> None:
    result = ensure_env(example, {})
    text = example.env_file.read_text()
    template = example.env_template.read_text()
    comments = [line for line in template.splitlines() if line.startswith("#")]
    assert [line for line in text.splitlines() if line.startswith("#")][: len(comments)] == comments
    keys = [line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert keys == list(read_template(example).bindings)
    assert result.written and result.added == tuple(keys)
    assert 'CORS_ORIGINS="http://localhost:5173,http://localhost:3000"' in text
    assert 'APP_MOTTO="Quotes & more #1 in town"' in text
    assert "SENTRY_DSN=\n" in text  # not secret-like: stays empty


def test_new_env_is_private_and_written_atomically(example: Project) -> None:
    ensure_env(example, {})
    assert stat.S_IMODE(example.env_file.stat().st_mode) == 0o600
    assert not [p for p in example.server_dir.iterdir() if p.name.endswith(".tmp")]


def test_secrets_are_generated_for_empty_and_placeholder_values(example: Project) -> None:
    result = ensure_env(example, {})
    values = read_env(example)
    assert set(result.generated) == {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "JWT_SECRET",
        "JWT_REFRESH_SECRET",
        "SESSION_SECRET",
    }
    for key in result.generated:
        assert SECRET_RE.fullmatch(values[key]), key
    assert len({values[k] for k in result.generated}) == len(result.generated)


def test_stack_keys_point_at_the_host_side(example: Project) -> None:
    ensure_env(example, {})
    values = read_env(example)
    assert values["POSTGRES_HOST"] == "127.0.0.1" and values["POSTGRES_PORT"] == "5432"
    assert values["REDIS_HOST"] == "127.0.0.1" and values["REDIS_PORT"] == "6379"
    db = urlsplit(values["DATABASE_URL"])
    assert (db.scheme, db.hostname, db.port, db.path, db.query) == (
        "postgresql",
        "127.0.0.1",
        5432,
        "/quotes",
        "schema=public",
    )
    assert (db.username, unquote(db.password or "")) == ("app", values["POSTGRES_PASSWORD"])
    rd = urlsplit(values["REDIS_URL"])
    assert (rd.hostname, rd.port, rd.path, unquote(rd.password or "")) == (
        "127.0.0.1",
        6379,
        "/0",
        values["REDIS_PASSWORD"],
    )


def test_configured_host_ports_reach_env(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    project = load_project(root, environ={"DEVENV_POSTGRES_PORT": "15432", "DEVENV_REDIS_PORT": "16379"})
    ensure_env(project, {})
    values = read_env(project)
    assert values["POSTGRES_PORT"] == "15432" and ":15432/" in values["DATABASE_URL"]
    assert values["REDIS_PORT"] == "16379" and ":16379/" in values["REDIS_URL"]


def test_second_run_changes_nothing(example: Project) -> None:
    ensure_env(example, {})
    before = example.env_file.read_bytes()
    result = ensure_env(example, {})
    assert not result.written and result.added == () and result.generated == ()
    assert example.env_file.read_bytes() == before


def test_existing_values_are_never_changed_and_missing_keys_appended(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        "# top\nA=1\n\n# about B\n# more about B\nB=2\nJWT_SECRET=\nPOSTGRES_PASSWORD=\n",
        "A=mine\nPOSTGRES_PASSWORD=keep-me\n",
    )
    result = ensure_env(project, {})
    text = project.env_file.read_text()
    assert text.startswith("A=mine\nPOSTGRES_PASSWORD=keep-me\n")
    assert "\n# about B\n# more about B\nB=2\n" in text
    values = read_env(project)
    assert values["A"] == "mine" and values["POSTGRES_PASSWORD"] == "keep-me"
    assert SECRET_RE.fullmatch(values["JWT_SECRET"])
    assert result.added == (
        "B",
        "JWT_SECRET",
        "POSTGRES_USER",
        "POSTGRES_DB",
        "DATABASE_URL",
        "REDIS_URL",
    )
    assert "keep-me@" in values["DATABASE_URL"]  # the URL uses the password .env already has


def test_minimal_template_gets_the_stack_settings(tmp_path: Path) -> None:
    project = load_project(copy_project("minimal", tmp_path / "minimal"), environ={})
    result = ensure_env(project, {})
    values = read_env(project)
    assert values["POSTGRES_USER"] == "app" and values["POSTGRES_DB"] == "app"
    # Redis gets a password only when the template has REDIS_PASSWORD: queue clients such as BullMQ take only host
    # and port from REDIS_URL, and the stack's Redis is published on loopback only.
    assert set(result.generated) == {"POSTGRES_PASSWORD"} and "REDIS_PASSWORD" not in values
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert values["DATABASE_URL"].startswith("postgresql://app:")
    assert "# --- Stack settings added by devenv" in project.env_file.read_text()
    assert not check_env(project).drift  # devenv's own keys are not "extra"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("JWT_SECRET", True),
        ("client_secret_value", True),
        ("API_KEY", True),
        ("DB_PASSWORD_FILE", True),
        ("GITHUB_TOKEN", True),
        ("KEYBOARD", False),
        ("KEY_NAME", False),
        ("SENTRY_DSN", False),
        ("PORT", False),
    ],
)
def test_secret_like_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("", True),
        ("  ", True),
        ("changeme", True),
        ("CHANGEME", True),
        ("change-me", True),
        ("<your key>", True),
        ("xxx", True),
        ("XXXXXX", True),
        ("s3cr3t", False),
        ("x", False),
        ("<a><b>", False),
    ],
)
def test_placeholders(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder


def test_placeholder_values_get_secrets(tmp_path: Path) -> None:
    project = make(tmp_path, "A_TOKEN=<token>\nB_KEY=xxx\nC_SECRET=change-me\nD_PASSWORD=real\nE=changeme\n")
    result = ensure_env(project, {})
    values = read_env(project)
    assert {"A_TOKEN", "B_KEY", "C_SECRET"} <= set(result.generated)
    assert values["D_PASSWORD"] == "real" and values["E"] == "changeme"


def test_crlf_bom_and_export_work(tmp_path: Path) -> None:
    template = b"\xef\xbb\xbf# c\r\nexport NODE_ENV=development\r\nPOSTGRES_USER=app\r\nexport JWT_SECRET=\r\n"
    project = make(tmp_path, template)
    result = ensure_env(project, {})
    text = project.env_file.read_text()
    assert "\r" not in text and "\ufeff" not in text
    assert text.startswith("# c\nexport NODE_ENV=development\nPOSTGRES_USER=app\n")
    values = read_env(project)
    assert values["NODE_ENV"] == "development" and "JWT_SECRET" in result.generated
    assert not check_env(project).drift


def test_crlf_bom_env_file_is_read(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\nPOSTGRES_PASSWORD=\n", b"\xef\xbb\xbfA=2\r\nPOSTGRES_PASSWORD=pw\r\n")
    assert read_env(project) == {"A": "2", "POSTGRES_PASSWORD": "pw"}
    assert stack_settings(project, {}).pg_password == "pw"


@pytest.mark.parametrize("spelling", [PASSWORD, f"'{PASSWORD}'"])
def test_password_with_special_characters(tmp_path: Path, spelling: str) -> None:
    project = make(
        tmp_path, "POSTGRES_PASSWORD=\nREDIS_PASSWORD=\n", f"POSTGRES_PASSWORD={spelling}\nREDIS_PASSWORD={spelling}\n"
    )
    ensure_env(project, {})
    settings = stack_settings(project, {})
    assert settings.pg_password == PASSWORD and settings.redis_password == PASSWORD
    values = read_env(project)
    db = urlsplit(values["DATABASE_URL"])
    assert unquote(db.password or "") == PASSWORD and db.hostname == "127.0.0.1"
    assert "%24x" in values["DATABASE_URL"] and "$" not in values["DATABASE_URL"]
    assert unquote(urlsplit(values["REDIS_URL"]).password or "") == PASSWORD
    net = urlsplit(settings.database_url("postgres", 5432))
    assert (net.hostname, net.port, unquote(net.password or "")) == ("postgres", 5432, PASSWORD)


def test_password_from_the_environment_is_used_consistently(tmp_path: Path) -> None:
    project = make(tmp_path, "POSTGRES_PASSWORD=\n")
    ensure_env(project, {"POSTGRES_PASSWORD": PASSWORD})
    values = read_env(project)
    assert values["POSTGRES_PASSWORD"] == PASSWORD
    assert unquote(urlsplit(values["DATABASE_URL"]).password or "") == PASSWORD
    assert stack_settings(project, {"POSTGRES_PASSWORD": "other"}).pg_password == "other"


# Not "${HOME}": python-dotenv expands ${...} in every spelling; nothing devenv writes contains it.
@pytest.mark.parametrize("value", ["plain", PASSWORD, "it's", 'q"uote\\', "new\nline", "a b #c", "'"])
def test_dotenv_quote_round_trips_through_python_dotenv(value: str) -> None:
    text = f"K={dotenv_quote(value)}\n"
    assert dotenv_values(stream=io.StringIO(text))["K"] == value


@pytest.mark.parametrize("value", ["plain", PASSWORD, "it's $x", 'q"uote\\', "new\nline"])
def test_compose_env_quote(value: str) -> None:
    quoted = compose_env_quote(value)
    if not any(c in value for c in "'\\\n"):
        assert quoted in {value, f"'{value}'"}
    else:
        assert quoted.startswith('"') and "$" not in quoted.replace("\\$", "")


def test_check_reports_missing_and_extra_with_lines(tmp_path: Path) -> None:
    project = make(tmp_path, "# c\nA=1\nB=2\n\nC=3\n", "A=1\nOLD=1\nPOSTGRES_PASSWORD=x\n")
    before = tree(tmp_path)
    report = check_env(project)
    assert report.drift and report.env_exists
    assert [(i.key, i.path.name, i.line) for i in report.missing] == [
        ("B", ".env.template", 3),
        ("C", ".env.template", 5),
    ]
    assert [(i.key, i.path.name, i.line) for i in report.extra] == [("OLD", ".env", 2)]
    assert tree(tmp_path) == before


def test_check_without_env_lists_every_key(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\nB=2\n")
    report = check_env(project)
    assert not report.env_exists and [i.key for i in report.missing] == ["A", "B"]
    assert not project.env_file.exists()


def test_blank_lines_do_not_shift_line_numbers(tmp_path: Path) -> None:
    project = make(tmp_path, "\n\n# c\n\nA=1\n\n\nB=2\n")
    bindings = read_template(project).bindings
    assert (bindings["A"].line, bindings["B"].line) == (5, 8)


BAD_TEMPLATES = [
    ("A=1\nthis is not valid\n", ".env.template:2: cannot parse `this is not valid`"),
    ('A=1\nB="open\n', '.env.template:2: unterminated " quote'),
    ("A='open\nB=2\n", ".env.template:1: unterminated ' quote"),
    ('A="open\nB=2\nC="x"\n', '.env.template:1: unterminated " quote'),
    ('A="open\nB=2\nC="\n', '.env.template:1: unterminated " quote: the value of A runs to line 3 and swallows B'),
    ("A=1\nB=2\nA=3\n", ".env.template:3: A is defined twice (first on line 1)"),
    ("1A=1\n", ".env.template:1: '1A' is not a valid variable name"),
    ("MY-KEY=1\n", ".env.template:1: 'MY-KEY' is not a valid variable name"),
    ("A=1\nLONELY\n", ".env.template:2: LONELY has no '='"),
]


@pytest.mark.parametrize(("template", "message"), BAD_TEMPLATES)
def test_bad_template(tmp_path: Path, template: str, message: str) -> None:
    project = make(tmp_path, template)
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as err:
        ensure_env(project, {})
    assert message in err.value.message
    assert err.value.hint
    assert tree(tmp_path) == before


def test_bad_env_file_is_reported_with_its_line(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\n", "A=1\nA=2\n")
    with pytest.raises(ConfigError, match=r"\.env:2: A is defined twice"):
        ensure_env(project, {})


def test_missing_template(tmp_path: Path) -> None:
    root = copy_project("custom", tmp_path / "custom")
    (root / "services" / "api" / ".env.template").unlink()
    project = load_project(root, environ={})
    before = tree(tmp_path)
    with pytest.raises(ConfigError) as err:
        ensure_env(project, {})
    assert "services/api/.env.template: the template is missing" in err.value.message
    assert "server.path" in (err.value.hint or "")
    assert tree(tmp_path) == before


def test_unreadable_env_directory(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\n")
    project.env_file.mkdir()
    with pytest.raises(ConfigError, match=r"\.env: cannot read the \.env file"):
        ensure_env(project, {})


def test_unreadable_env_not_utf8(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\n", b"A=\xff\xfe\n")
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match=r"\.env: the \.env file is not UTF-8 text") as err:
        ensure_env(project, {})
    assert err.value.hint
    assert tree(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_env_permissions(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\n", "A=1\n")
    project.env_file.chmod(0)
    with pytest.raises(ConfigError, match="cannot read"):
        ensure_env(project, {})


def test_bad_redis_db(tmp_path: Path) -> None:
    project = make(tmp_path, "REDIS_DB=0\n", "REDIS_DB=one\n")
    with pytest.raises(ConfigError, match=r"\.env:1: REDIS_DB='one' is not a database index"):
        stack_settings(project, {})


def test_warnings_for_placeholders_dollars_and_mode(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        "JWT_SECRET=\nPOSTGRES_PASSWORD=\nDATABASE_URL=\n",
        "JWT_SECRET=changeme\nPOSTGRES_PASSWORD=a$b\nDATABASE_URL=postgresql://u:p@127.0.0.1:6543/d\n",
    )
    project.env_file.chmod(0o644)
    warnings = "\n".join(ensure_env(project, {}).warnings)
    assert "JWT_SECRET (apps/server/.env:1) is empty or a placeholder" in warnings or "JWT_SECRET (" in warnings
    assert "POSTGRES_PASSWORD" in warnings and "single quotes" in warnings


def test_ports_in_use_reach_the_values_devenv_wrote_and_hand_written_ones_are_left_alone(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        "POSTGRES_PORT=5432\nDATABASE_URL=postgresql://app:pw@localhost:5432/shop?schema=public\nREDIS_URL=\n",
        None,
    )
    result = ensure_env(project, {})
    assert result.values["POSTGRES_PORT"] == "5432" and "REDIS_URL" in result.values
    # The user edits REDIS_URL by hand; devenv wrote the other two.
    text = project.env_file.read_text().replace("redis://127.0.0.1:6379/0", "redis://localhost:6379/3")
    project.env_file.write_text(text)
    ours = envfile.written_marks(result.values)
    assert "pw" not in str(ours) and ours.keys() == {"POSTGRES_PORT", "DATABASE_URL", "REDIS_URL"}  # digests only
    synced = envfile.sync_ports(project, envfile.read_env_files(project), envfile.HostPorts(55001, 55002), ours)
    values = read_env(project)
    assert synced.updated.keys() == {"POSTGRES_PORT", "DATABASE_URL"}
    assert values["POSTGRES_PORT"] == "55001" and ":55001/shop?schema=public" in values["DATABASE_URL"]
    assert values["REDIS_URL"] == "redis://localhost:6379/3"  # hand-written: never silently replaced
    [warning] = synced.warnings
    assert "REDIS_URL" in warning and "55002" in warning and "leaves a value you wrote alone" in warning
    again = envfile.sync_ports(project, envfile.read_env_files(project), envfile.HostPorts(55001, 55002), ours)
    assert again.updated == {} and len(again.warnings) == 1


def test_warns_when_env_is_tracked_by_git(tmp_path: Path) -> None:
    project = make(tmp_path, "A=1\n", "A=1\n")
    root = project.root

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "apps/server/.env")
    warnings = ensure_env(project, {}).warnings
    assert any("tracked by git" in w for w in warnings)


def test_secret_length(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(envfile.new_secret()) >= 43  # 32 bytes, base64url
