"""Pulls that fail (no registry, unknown image) name the image and the setting that chooses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.core.errors import ComposeFailed
from devenv.project.discovery import Project, load_project
from devenv.stack.images import pull_failure


@pytest.mark.parametrize(
    ("output", "image", "setting"),
    [
        (
            ' postgres Pulling \n postgres Error Get "https://registry.invalid/v2/": dial tcp: lookup '
            "registry.invalid: no such host\nError response from daemon: Get ...: no such host\n",
            "postgres:16-alpine",
            "DEVENV_POSTGRES_IMAGE",
        ),
        (
            " redis Error pull access denied for redis, repository does not exist\n",
            "redis:7-alpine",
            "DEVENV_REDIS_IMAGE",
        ),
        (
            "failed to solve: node:20-bookworm-slim: failed to resolve source metadata for "
            "docker.io/library/node:20-bookworm-slim: dial tcp: lookup registry.invalid: no such host\n",
            "node:20-bookworm-slim",
            "DEVENV_BUILD_ARG_NODE_IMAGE",
        ),
    ],
)
def test_a_failed_pull_names_the_image_and_the_setting(
    example: Project, monkeypatch: pytest.MonkeyPatch, output: str, image: str, setting: str
) -> None:
    monkeypatch.setenv("DEVENV_BUILD_ARG_NODE_IMAGE", "node:20-bookworm-slim")
    project = load_project(example.root)
    err = pull_failure(project.config, ComposeFailed(["up"], 1, output))
    assert err is not None and err.exit_code == 2
    assert image in err.message and "cannot be pulled" in err.message
    assert err.hint and setting in err.hint


def test_other_compose_failures_are_not_pull_errors(example: Project) -> None:
    failed = ComposeFailed(["up"], 1, "service migrate didn't complete successfully")
    assert pull_failure(example.config, failed) is None


def test_a_tls_failure_in_a_build_that_does_not_mount_the_ca_says_to_mount_it(tmp_path: Path) -> None:
    from devenv.project.dockerfile import parse
    from devenv.stack.build import _hint

    lines = ["npm error code SELF_SIGNED_CERT_IN_CHAIN", "npm error self-signed certificate in certificate chain"]
    plain = parse(tmp_path / "Dockerfile", "FROM node:20\nRUN npm ci\n")
    mounted = parse(tmp_path / "Dockerfile", "FROM node:20\nRUN --mount=type=secret,id=npm_ca npm ci\n")
    assert "add `--mount=type=secret,id=npm_ca`" in _hint(lines, "exit code 1", plain)
    assert "the Dockerfile mounts secret npm_ca" in _hint(lines, "exit code 1", mounted)
