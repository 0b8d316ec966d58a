"""CI helpers: stack names, durations, exported settings, GitHub masking, gc selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devenv.commands.ci import (
    CiStack,
    StackAge,
    append_github_env,
    ci_name,
    dotenv_lines,
    mask_for_github,
    old_stacks,
    parse_created,
    parse_duration,
    sanitize_name,
    validate_name,
    write_env_file,
)
from devenv.core.errors import UsageError

STACK = CiStack(
    name="gh-1-test-1",
    database_url="postgresql://app:s3cret@127.0.0.1:32768/quotes",
    redis_url="redis://default:r3dis@127.0.0.1:32769/0",
    server_url="http://127.0.0.1:32770",
    seconds=3.2,
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"GITHUB_RUN_ID": "123", "GITHUB_JOB": "Integration Tests", "GITHUB_RUN_ATTEMPT": "2"},
            "gh-123-integration-tests-2",
        ),
        ({"CI_JOB_ID": "987"}, "gl-987"),
    ],
)
def test_ci_name_from_the_ci_environment(environ: dict[str, str], expected: str) -> None:
    assert ci_name(environ) == expected


def test_ci_name_is_random_elsewhere() -> None:
    first, second = ci_name({}), ci_name({})
    assert first != second and first.startswith("ci-") and sanitize_name(first) == first


def test_invalid_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        validate_name("My Stack!")
    assert info.value.hint and "my-stack" in info.value.hint


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


def test_bad_duration() -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("2 hours")


def test_old_stacks_selects_by_age() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    created = parse_created("2026-01-01T09:00:00.123456789Z")
    assert created == datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=UTC)
    stacks = [
        StackAge("old", created, 4, 2),
        StackAge("new", now - timedelta(minutes=5), 4, 2),
        StackAge("orphan", None, 0, 1),
    ]
    assert [s.name for s in old_stacks(stacks, timedelta(hours=2), now)] == ["old", "orphan"]


def test_env_file_is_written_0600_and_reads_back(tmp_path: Path) -> None:
    from dotenv import dotenv_values

    path = tmp_path / "ci.env"
    write_env_file(path, STACK.variables())
    assert path.stat().st_mode & 0o777 == 0o600
    assert dotenv_values(path) == STACK.variables()
    assert dotenv_lines({"A": "b"}) == "A=b\n"


def test_github_env_and_masks(tmp_path: Path) -> None:
    target = tmp_path / "github_env"
    assert append_github_env(STACK.variables(), {"GITHUB_ENV": str(target)})
    assert "REDIS_URL=redis://default:r3dis@" in target.read_text()
    assert not append_github_env(STACK.variables(), {})
    assert mask_for_github(STACK.variables(), {"GITHUB_ACTIONS": "true"}) == ["::add-mask::s3cret", "::add-mask::r3dis"]
    assert mask_for_github(STACK.variables(), {}) == []
