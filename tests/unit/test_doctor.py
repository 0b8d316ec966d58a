"""`devenv doctor` verdicts from fake engine facts: ok / warn / fail, each with a hint."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devenv.commands.doctor import check_disk, check_engine, check_images, check_socket, check_spare, diagnose
from devenv.core.errors import EngineUnreachable
from devenv.engine.runtime import EngineFacts
from devenv.project.discovery import Project, load_project
from tests.fakes import FakeRuntime


def facts(compose: str = "2.26.1", images: frozenset[str] = frozenset()) -> EngineFacts:
    return EngineFacts("unix:///var/run/docker.sock", "26.1.5", compose, "/nonexistent", images)


@pytest.mark.parametrize(
    ("compose", "level"), [("2.26.1", "ok"), ("2.29.7-desktop.1", "ok"), ("2.17.3", "fail"), ("", "fail")]
)
def test_compose_version(compose: str, level: str) -> None:
    found = {f.check: f for f in check_engine(facts(compose))}
    assert found["engine"].level == "ok"
    assert found["compose"].level == level
    assert level == "ok" or found["compose"].hint


def test_unreachable_engine_fails_with_its_hint() -> None:
    err = EngineUnreachable("Docker Engine not reachable at unix:///x.sock: the socket does not exist", "start Docker")
    (finding,) = check_engine(err)
    assert finding.level == "fail" and finding.hint == "start Docker"


def test_socket_checks(tmp_path: Path) -> None:
    assert check_socket("unix:///no/such.sock").level == "fail"
    assert check_socket("tcp://10.0.0.5:2376").level == "ok"
    path = tmp_path / "d.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert check_socket(f"unix://{path}").level == "ok"


def test_disk_is_not_checked_for_a_remote_engine() -> None:
    assert "not checked" in check_disk("/var/lib/docker", "ssh://me@build-box").detail


def test_images_present_or_to_be_pulled(example: Project) -> None:
    found = {f.check: f for f in check_images(example, facts(images=frozenset({"postgres:16-alpine"})))}
    assert found["image postgres:16-alpine"].level == "ok"
    assert found["image redis:7-alpine"].level == "warn"
    assert "redis.image" in found["image redis:7-alpine"].detail
    assert "docs/offline.md" in found["image redis:7-alpine"].hint


def test_an_image_two_stages_build_from_is_listed_once(example: Project) -> None:
    # The example's Dockerfile: `FROM ${NODE_IMAGE} AS deps` and `FROM ${NODE_IMAGE} AS runtime`.
    checks = [f.check for f in check_images(example, facts())]
    node = [c for c in checks if "node" in c]
    assert len(node) == 1, checks
    assert len(checks) == len(set(checks))
    found = {f.check: f for f in check_images(example, facts())}
    assert "Dockerfile:13" in found[node[0]].detail  # named where it is first pulled


def test_diagnose_reports_a_taken_port_and_fails(
    example: Project, monkeypatch: pytest.MonkeyPatch, held_port: int
) -> None:
    monkeypatch.setenv("DEVENV_REDIS_PORT", str(held_port))
    report = diagnose(load_project(example.root), FakeRuntime(), lambda: facts())
    found = {f.check: f for f in report.findings}
    assert found["port redis"].level == "fail" and "DEVENV_REDIS_PORT" in found["port redis"].hint
    assert found[".env"].level == "warn"  # not written yet
    assert report.failed


def test_diagnose_never_raises_when_the_engine_is_down(example: Project) -> None:
    def down() -> EngineFacts:
        raise EngineUnreachable("Docker Engine not reachable", "start it")

    report = diagnose(example, None, down)
    assert report.failed
    assert report.findings[0].check == "engine" and report.findings[0].level == "fail"


def test_a_failed_spare_copy_is_a_warning_until_a_good_one(example: Project) -> None:
    assert check_spare(example).level == "ok"
    example.state_dir.mkdir(parents=True, exist_ok=True)
    log = example.state_dir / "spare.log"
    log.write_text("2026-11-26T02:00:00 making the spare 'quotes__devenv_spare' failed: ProtocolError: closed\n")
    found = check_spare(example)
    assert found.level == "warn" and "ProtocolError: closed" in found.detail and "spare.log" in found.hint
