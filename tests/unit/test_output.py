"""The human output off a terminal (CI logs, pipes): URLs are never folded, so they can be copied."""

from __future__ import annotations

import pytest

from devenv.cli.output import print_up
from devenv.commands.lifecycle import ServiceReport, UpResult


def test_up_table_keeps_each_url_on_one_line_in_a_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    url = "postgresql://app:***@127.0.0.1:55432/a_rather_long_database_name_for_a_table"
    result = UpResult(
        project="monorepo",
        services=(ServiceReport("postgres", "ready", url, 1.67), ServiceReport("server", "ready", "http://x", 4.2)),
        compose_work=True,
        seeded=False,
        elapsed=5.2,
        env_added=(),
    )
    print_up(result, as_json=False)
    out = capsys.readouterr().out
    assert any(url in line for line in out.splitlines())
