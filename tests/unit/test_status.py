"""`devenv status` folds liveness and readiness per service into healthy / degraded / unhealthy."""

from __future__ import annotations

from devenv.commands.status import stack_status
from devenv.project.discovery import Project
from devenv.project.envfile import ensure_env
from tests.fakes import FakeConnectors, FakeRuntime, state
from tests.fixtures.helpers import context_of


def test_status_of_a_stack_that_is_not_running_is_unhealthy(example: Project) -> None:
    ensure_env(example, {})
    report = stack_status(context_of(example, connectors=FakeConnectors()))
    assert report.status == "unhealthy"
    assert int(report.exit_code) == 4
    assert {c.status for c in report.checks.values()} == {"down"}
    assert all(c.container == "missing" and not c.live for c in report.checks.values())


def test_status_folds_redis_down_into_degraded(example: Project) -> None:
    ensure_env(example, {})
    fakes = FakeConnectors(answers={"/health/status": (200, b'{"status":"degraded"}')})
    runtime = FakeRuntime(states=[state("postgres"), state("redis", "exited", exit_code=0), state("server")])
    report = stack_status(context_of(example, runtime=runtime, connectors=fakes))
    assert report.checks["redis"].status == "down" and report.checks["redis"].container == "exited (0)"
    assert report.checks["server"].status == "degraded"
    assert report.checks["server"].details == {"status": "degraded"}
    assert report.status == "degraded" and int(report.exit_code) == 1
    assert report.as_dict()["checks"]["postgres"]["status"] == "up"
