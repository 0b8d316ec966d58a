"""Waiting: retry until ready, final states raise at once, deadlines, backoff bounds; the probes of `up` find their
own ports on their target."""

from __future__ import annotations

import socket
import threading

import pytest
from tenacity import wait_exponential_jitter

from devenv.core.errors import MigrationFailed, ServiceNotReady
from devenv.core.wait import BACKOFF, Cancelled, wait_for
from devenv.stack.probes import (
    ConnectorReady,
    ContainerWatch,
    HttpReady,
    JobProbe,
    StateCache,
    Target,
    TcpReady,
    hint_from_logs,
)
from tests.fakes import FakeConnectors, FakeRedis, FakeRuntime, state


class Scripted:
    """A probe that answers from a script: False (not yet), True (ready) or an exception (final)."""

    name = "scripted"

    def __init__(self, answers: list[object]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def check(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, bool)
        return answer


def test_retries_until_ready_and_sleeps_within_bounds() -> None:
    sleeps: list[float] = []
    probe = Scripted([False, False, False, True])
    wait_for(probe, timeout=10, sleep=sleeps.append)
    assert probe.calls == 4
    assert len(sleeps) == 3
    assert all(0 < s <= 0.5 for s in sleeps)
    assert sleeps[0] <= 0.05 + BACKOFF["jitter"]


def test_backoff_is_capped_below_half_a_second() -> None:
    strategy = wait_exponential_jitter(**BACKOFF)

    class _State:
        attempt_number = 50

    assert strategy(_State()) <= 0.5  # type: ignore[arg-type]
    assert BACKOFF["multiplier"] <= 0.05


def test_final_state_raises_at_once() -> None:
    probe = Scripted([False, ServiceNotReady("postgres refused", "reset")])
    with pytest.raises(ServiceNotReady, match="refused"):
        wait_for(probe, timeout=10, sleep=lambda s: None)
    assert probe.calls == 2


def test_deadline_names_the_service_and_hints() -> None:
    probe = Scripted([False] * 10_000)
    with pytest.raises(ServiceNotReady) as info:
        wait_for(probe, timeout=0.05, sleep=lambda s: None)
    assert "scripted did not answer within 0.05 s" in info.value.message
    assert info.value.hint and "--timeout" in info.value.hint


def test_cancel_stops_quietly() -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        wait_for(Scripted([True]), timeout=1, cancel=cancel)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (state("server", "exited", exit_code=1), "server exited with code 1"),
        (state("server", "restarting", restarts=2), "crash-looping"),
        (state("server", "running", restarts=1), "crash-looping"),
        (state("postgres", "running", health="unhealthy"), "postgres turned unhealthy"),
    ],
)
def test_watch_reports_dead_containers_with_logs(container: object, message: str) -> None:
    rt = FakeRuntime(states=[container], log_text="boom\nFATAL: password authentication failed for user app")  # type: ignore[list-item]
    watch = ContainerWatch(rt, StateCache(rt, max_age=0), ["postgres", "server"])
    with pytest.raises(ServiceNotReady) as info:
        watch()
    assert message in info.value.message
    assert info.value.details and "password authentication failed" in info.value.details
    assert info.value.hint and "back in .env" in info.value.hint and "reset --hard" not in info.value.hint


@pytest.mark.parametrize(
    "container",
    [state("server", "running"), state("postgres", "running", health="starting"), state("migrate", "exited")],
)
def test_watch_accepts_live_and_finished_jobs(container: object) -> None:
    rt = FakeRuntime(states=[container])  # type: ignore[list-item]
    watch = ContainerWatch(rt, StateCache(rt, max_age=0), ["postgres", "server", "migrate"])
    assert watch() is None  # no error: live, starting and finished-with-0 are all fine
    assert {name for name, _ in rt.calls} == {"containers"}  # only the states were asked for: no logs, no restart


def test_job_probe() -> None:
    rt = FakeRuntime(states=[state("migrate", "running")])
    cache = StateCache(rt, max_age=0)
    assert JobProbe(rt, cache).check() is False
    rt.states = [state("migrate", "exited", exit_code=0)]
    assert JobProbe(rt, cache).check() is True
    rt.states = [state("migrate", "exited", exit_code=1)]
    rt.log_text = "Error: P3009 migrate found failed migrations"
    with pytest.raises(MigrationFailed) as info:
        JobProbe(rt, cache).check()
    assert info.value.exit_code == 5
    assert info.value.details and "P3009" in info.value.details


def test_state_cache_shares_one_engine_call() -> None:
    rt = FakeRuntime(states=[state("redis")])
    cache = StateCache(rt, max_age=60)
    for _ in range(5):
        cache.service("redis")
    assert [c for c in rt.calls if c[0] == "containers"] == [("containers", ())]


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        ("FATAL:  password authentication failed for user", "back in .env"),
        ("database files are incompatible with server", "major version"),
        ("Error: Cannot find module 'express'", "dependency"),
        ("all good", None),
    ],
)
def test_hints_from_logs(logs: str, expected: str | None) -> None:
    hint = hint_from_logs(logs)
    assert (hint is None) if expected is None else (hint is not None and expected in hint)


def _target(*states: object, stale: frozenset[str] = frozenset()) -> tuple[FakeRuntime, Target]:
    rt = FakeRuntime(states=list(states))  # type: ignore[arg-type]
    return rt, Target(rt, StateCache(rt, max_age=0, stale=stale), "10.0.0.7")


def test_a_probe_finds_its_port_once_its_container_runs() -> None:
    rt, target = _target(state("redis", "created"))
    opened: list[tuple[str, int]] = []

    def open_redis(host: str, port: int) -> FakeRedis:
        opened.append((host, port))
        return FakeRedis()

    probe = ConnectorReady("redis", target, 6379, 0, open_redis)
    assert probe.check() is False and opened == []  # not running yet: no port, no connection
    rt.states = [state("redis", ports={6379: 49002})]
    assert probe.check() is True and probe.check() is True
    assert opened == [("10.0.0.7", 49002)]  # the published port, on the target's host, opened once


def test_a_fixed_port_counts_only_for_a_container_of_this_up() -> None:
    # The container compose is about to replace still answers on the fixed port: it is not this up's.
    _, target = _target(state("redis", ports={6379: 6379}), stale=frozenset({"id-redis"}))
    assert target.port("redis", 6379, 6390) is None
    target.cache.settled.set()
    assert target.port("redis", 6379, 6390) == 6390  # configured wins, as in the endpoints
    assert target.port("redis", None, 6390) is None  # a service with no port to ask


def test_http_readiness_keeps_the_path_that_answered() -> None:
    connectors = FakeConnectors(answers={"/ready": (404, b""), "/health": (200, b"ok")})
    _, target = _target(state("server", ports={3000: 49003}))
    probe = HttpReady("server", target, 3000, 0, connectors.server, "/ready", ("/health",))
    assert probe.chosen is None
    assert probe.check() is True and probe.chosen == "/health"
    assert ("server", "http://10.0.0.7:49003", 0) in connectors.seen


def test_tcp_readiness_waits_for_the_published_port() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        rt = FakeRuntime(states=[state("mail", "restarting")])
        probe = TcpReady("mail", Target(rt, StateCache(rt, max_age=0), "127.0.0.1"), 25, None)
        assert probe.check() is False  # not running: no port to try
        rt.states = [state("mail", ports={25: port})]
        assert probe.check() is True  # accepted and kept open
