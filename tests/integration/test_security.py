"""Secrets never appear in what devenv prints; .env is 0600; ports are published on 127.0.0.1 only."""

from __future__ import annotations

import json
import stat
import subprocess
from urllib.parse import quote

from tests.integration.helpers import ExampleProject

SECRET_KEYS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET")


def test_no_generated_secret_in_any_output(example: ExampleProject) -> None:
    outputs = [example.devenv("env", check=True)]
    secrets = [example.env_values()[k] for k in SECRET_KEYS]
    assert all(len(s) >= 32 for s in secrets)
    assert stat.S_IMODE((example.server_dir / ".env").stat().st_mode) == 0o600
    for args in (
        ["render"],
        ["up"],
        ["up", "--json"],
        ["status"],
        ["status", "--json"],
        ["reset", "--yes"],
        ["reset", "--yes", "--json"],
        ["doctor"],
        ["doctor", "--json"],
        ["migrate", "--status"],
        ["logs", "--tail", "200"],
        ["ci", "up", "--name", f"{example.name}-ci"],
        ["ci", "down", "--name", f"{example.name}-ci"],
        ["up", "no-such-service"],
        ["down"],
        ["status", "--json"],
    ):
        outputs.append(example.devenv(*args))
    text = "\n".join(o.stdout + o.stderr for o in outputs)
    assert "postgresql://" in text and "***" in text  # the URLs were printed, masked
    for secret in secrets:
        assert secret not in text
        assert quote(secret, safe="") not in text
    state_files = [p for p in (example.root / ".devenv").rglob("*") if p.is_file()]
    assert any(p.name == "state.json" for p in state_files) and any(p.name == "compose.yml" for p in state_files)
    for state_file in state_files:  # nothing inside the project but .env holds a secret (a build context may copy it)
        content = state_file.read_text(errors="replace")
        assert not any(s in content or quote(s, safe="") in content for s in secrets), state_file


def test_ports_are_published_on_loopback_only(example: ExampleProject) -> None:
    example.devenv("up", check=True)
    for service in ("postgres", "redis", "server"):
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{json .HostConfig.PortBindings}}", example.container(service)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        bindings = [b for port in json.loads(inspect.stdout).values() for b in port]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), (service, bindings)
