"""`up` orchestration with a fake runtime: service selection, the no-op second up, port checks, status folding."""

from __future__ import annotations

import pytest

from devenv.errors import PortInUse, UsageError
from devenv.project import Project, load_project
from devenv.stack import build_fingerprint, expand_services, port_claims, save_state, up
from devenv.status import stack_status
from tests.fakes import FakeRuntime, state


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ([], ["postgres", "redis", "migrate", "server"]),
        (["postgres", "redis"], ["postgres", "redis"]),
        (["migrate"], ["postgres", "migrate"]),
        (["server"], ["postgres", "redis", "migrate", "server"]),
    ],
)
def test_expand_services_adds_dependencies_in_start_order(asked: list[str], expected: list[str]) -> None:
    assert expand_services(asked) == expected


def test_unknown_service_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown service 'postgress'") as info:
        expand_services(["postgress"])
    assert info.value.hint and "postgres" in info.value.hint


def test_port_claims_name_the_setting(example: Project) -> None:
    claims = {c.service: c for c in port_claims(example, ["postgres", "redis", "server"])}
    assert claims["postgres"].port == 5432 and "DEVENV_POSTGRES_PORT" in claims["postgres"].setting
    assert "server.port" in claims["server"].setting


def test_second_up_with_nothing_changed_does_no_compose_work(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import devenv.stack as stack_mod

    for var in ("DEVENV_POSTGRES_PORT", "DEVENV_REDIS_PORT", "DEVENV_SERVER_PORT"):
        monkeypatch.setenv(var, "0")  # Docker-chosen: independent of what else runs on this machine
    example = load_project(example.root)

    runtime = FakeRuntime(
        states=[
            state("postgres", health="healthy"),
            state("redis", health="healthy"),
            state("migrate", "exited", exit_code=0),
            state("server", health="healthy"),
        ]
    )

    class Ready:
        def __init__(self, name: str) -> None:
            self.name = name

        def check(self) -> bool:
            return True

    monkeypatch.setattr(
        stack_mod._Waiter, "probes", lambda self, services, endpoints, cache: {s: Ready(s) for s in services}
    )
    monkeypatch.setattr(stack_mod._Waiter, "mark_cluster", lambda self: None)
    monkeypatch.setattr(stack_mod, "is_seeded", lambda example, runtime: True)
    from devenv.render import write_compose

    digest = write_compose(example).digest
    save_state(example, {"fingerprint": {"compose": digest, "build": build_fingerprint(example)}})
    result = up(example, runtime)
    assert result.compose_work is False
    assert not [c for c in runtime.calls if c[0] == "up"]

    (example.server_dir / "src.js").write_text("// a code change\n")
    changed = up(example, runtime)
    assert changed.compose_work is True
    assert [c for c in runtime.calls if c[0] == "up"] == [("up", (("postgres", "redis", "migrate", "server"), True))]


def test_up_refuses_a_taken_port_before_starting_anything(
    example: Project, monkeypatch: pytest.MonkeyPatch, held_port: int
) -> None:
    monkeypatch.setenv("DEVENV_POSTGRES_PORT", str(held_port))
    taken = load_project(example.root)
    runtime = FakeRuntime()
    with pytest.raises(PortInUse) as info:
        up(taken, runtime, ["postgres"])
    assert str(held_port) in info.value.message and "DEVENV_POSTGRES_PORT" in (info.value.hint or "")
    assert not [c for c in runtime.calls if c[0] == "up"]


def test_status_of_a_stack_that_is_not_running_is_unhealthy(example: Project) -> None:
    from devenv.envfile import ensure_env

    ensure_env(example)
    report = stack_status(example, FakeRuntime())
    assert report.status == "unhealthy"
    assert int(report.exit_code) == 4
    assert {c.status for c in report.checks.values()} == {"down"}
    assert all(c.container == "missing" and not c.live for c in report.checks.values())


def test_status_folds_redis_down_into_degraded(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import devenv.status as status_mod
    from devenv.envfile import ensure_env

    ensure_env(example)

    class Probe:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.name = "x"

        def check(self) -> bool:
            return True

    monkeypatch.setattr(status_mod, "PostgresProbe", Probe)
    monkeypatch.setattr(status_mod, "HttpProbe", Probe)
    monkeypatch.setattr(status_mod, "_server_status", lambda url: {"status": "degraded"})
    runtime = FakeRuntime(states=[state("postgres"), state("redis", "exited", exit_code=0), state("server")])
    report = stack_status(example, runtime)
    assert report.checks["redis"].status == "down" and report.checks["redis"].container == "exited (0)"
    assert report.checks["server"].status == "degraded"
    assert report.status == "degraded" and int(report.exit_code) == 1
    assert report.as_dict()["checks"]["postgres"]["status"] == "up"


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
    from devenv.runtime import ComposeFailed
    from devenv.stack import _image_error

    monkeypatch.setenv("DEVENV_BUILD_ARG_NODE_IMAGE", "node:20-bookworm-slim")
    project = load_project(example.root)
    err = _image_error(project, ComposeFailed(["up"], 1, output))
    assert err is not None and err.exit_code == 2
    assert image in err.message and "cannot be pulled" in err.message
    assert err.hint and setting in err.hint


def test_other_compose_failures_are_not_pull_errors(example: Project) -> None:
    from devenv.runtime import ComposeFailed
    from devenv.stack import _image_error

    assert _image_error(example, ComposeFailed(["up"], 1, "service migrate didn't complete successfully")) is None


def test_a_remote_engine_needs_an_explicit_bind_address(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    class Remote(FakeRuntime):
        def host_address(self) -> str:
            return "build-box"

    with pytest.raises(UsageError, match="remote") as info:
        up(example, Remote())
    assert info.value.hint and "DEVENV_BIND_ADDRESS=0.0.0.0" in info.value.hint
