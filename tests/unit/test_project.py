"""Project discovery (like git: -C, devenv.toml upward, .env.template here or in apps/server) and naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.core.errors import ConfigError, ProjectNotFound
from devenv.project.discovery import load_project
from tests.fixtures.helpers import clean_environ, copy_project


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environ(monkeypatch)


def test_template_in_apps_server_makes_the_current_dir_the_root(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    project = load_project(None, cwd=root, environ={})
    assert project.root == root.resolve()
    assert project.name == "quotes"
    assert project.server_dir == root.resolve() / "apps" / "server"
    assert project.env_template == project.server_dir / ".env.template"
    assert project.env_file == project.server_dir / ".env"
    assert project.state_dir == project.root / ".devenv"
    assert project.compose_file == project.root / ".devenv" / "compose.yml"


def test_inside_apps_server_the_root_is_the_monorepo_root(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    project = load_project(None, cwd=root / "apps" / "server", environ={})
    assert project.root == root.resolve()
    assert project.config.server.path == "apps/server"


def test_single_app_template_in_the_current_dir(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / ".env.template").write_text("A=1\n")
    project = load_project(None, cwd=root, environ={})
    assert project.root == root.resolve()
    assert project.server_dir == project.root
    assert project.config.server.dockerfile == "Dockerfile"


def test_devenv_toml_is_found_upward(tmp_path: Path) -> None:
    root = copy_project("custom", tmp_path / "custom")
    deep = root / "services" / "api"
    project = load_project(None, cwd=deep, environ={})
    assert project.root == root.resolve()
    assert project.name == "shop"
    assert project.server_dir == project.root / "services" / "api"


def test_project_dir_option_relative_to_cwd(tmp_path: Path) -> None:
    copy_project("example", tmp_path / "quotes")
    project = load_project(Path("quotes"), cwd=tmp_path, environ={})
    assert project.root == (tmp_path / "quotes").resolve()


def test_single_app_with_devenv_toml_defaults_to_server_path_dot(tmp_path: Path) -> None:
    root = copy_project("single-app", tmp_path / "single")
    project = load_project(root, environ={})
    assert project.config.server.path == "."
    assert project.env_template == project.root / ".env.template"


def test_nothing_found_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFound) as err:
        load_project(None, cwd=tmp_path, environ={})
    assert str(tmp_path.resolve()) in err.value.message
    assert "devenv.toml" in err.value.message and ".env.template" in err.value.message
    assert err.value.hint and "-C" in err.value.hint


def test_missing_project_dir(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFound, match="not a directory"):
        load_project(tmp_path / "nope", environ={})


def test_name_is_sanitised_from_the_folder(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "My Shop.v2")
    assert load_project(root, environ={}).name == "my-shop-v2"


def test_env_name_override_gets_its_own_state_dir(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    project = load_project(root, environ={"DEVENV_PROJECT_NAME": "ci-7"})
    assert project.name == "ci-7"
    assert project.base_name == "quotes"
    assert project.state_dir == project.root / ".devenv" / "stacks" / "ci-7"


def test_invalid_env_name_is_a_config_error(tmp_path: Path) -> None:
    root = copy_project("example", tmp_path / "quotes")
    with pytest.raises(ConfigError, match="DEVENV_PROJECT_NAME") as err:
        load_project(root, environ={"DEVENV_PROJECT_NAME": "Bad Name"})
    assert "bad-name" in (err.value.hint or "")
