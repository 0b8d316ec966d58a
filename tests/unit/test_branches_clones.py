"""Per-branch databases and clones per test worker: names, the branch git says, refusals, the copy strategy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devenv.cli.main import split_passthrough
from devenv.commands import branches
from devenv.commands.clones import ClonesResult, check_count, make_clones
from devenv.core.errors import ConfigError, NotOurDatabase, StackNotRunning, UsageError
from devenv.db import marks
from devenv.db.copies import FILE_COPY_FROM, server_version, strategy_for
from devenv.project.config import load_config
from devenv.project.discovery import Project
from tests.fakes import FakeCluster, FakeConnectors, FakeSession
from tests.fixtures.helpers import context_of


def test_clone_and_branch_names_fit_63_bytes_and_never_collide() -> None:
    assert marks.clone_name("quotes", 1) == "quotes_w1"
    assert marks.branch_name("quotes", "main") == "quotes__branch_main"
    for db in ("quotes", "x" * 50, "x" * 63, "数据库" * 7):
        reserved = {db, marks.template_name(db), marks.spare_name(db), marks.incoming_name(db), marks.trash_name(db)}
        clones = {marks.clone_name(db, i) for i in range(1, 65)}
        parked = {marks.branch_name(db, b) for b in ("main", "feat/x", "feat-x", "feat_x", "Feat-X", "é", "a" * 80)}
        assert len(clones) == 64 and len(parked) == 7  # feat/x and feat-x get names of their own
        assert not (clones & parked) and not (clones | parked) & reserved
        assert all(len(n.encode()) <= 63 for n in clones | parked)
    with pytest.raises(ValueError):
        marks.clone_name("quotes", 0)


def test_the_seeded_mark_may_name_the_branch() -> None:
    mark = marks.seeded_branch_mark("feat/x")
    assert marks.owning_branch(mark) == "feat/x" and marks.owning_branch(marks.SEEDED_MARK) is None
    cluster = FakeCluster(databases={"postgres": None, "app": mark})
    assert marks.is_seeded(FakeSession(cluster, "app"))  # type: ignore[arg-type]


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_current_branch_is_read_from_git_files_worktrees_too(tmp_path: Path) -> None:
    assert branches.current_branch(tmp_path) is None  # not in git
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/feat/x\n")
    (repo / "apps").mkdir()
    assert branches.current_branch(repo / "apps") == "feat/x"
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (repo / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (repo / ".git" / "worktrees" / "wt" / "HEAD").write_text("ref: refs/heads/other\n")
    (worktree / ".git").write_text(f"gitdir: {repo}/.git/worktrees/wt\n")
    assert branches.current_branch(worktree) == "other"
    (repo / ".git" / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    assert branches.current_branch(repo) is None  # detached


def test_per_branch_is_off_by_default_and_set_by_file_or_variable(tmp_path: Path) -> None:
    assert load_config(None, {}).db.per_branch is False
    toml = tmp_path / "devenv.toml"
    toml.write_text("[db]\nper_branch = true\n")
    assert load_config(toml, {}).db.per_branch is True
    assert load_config(None, {"DEVENV_DB_PER_BRANCH": "true"}).db.per_branch is True
    assert load_config(toml, {"DEVENV_DB_PER_BRANCH": "0"}).db.per_branch is False
    with pytest.raises(ConfigError, match="DEVENV_DB_PER_BRANCH"):
        load_config(None, {"DEVENV_DB_PER_BRANCH": "maybe"})


def _switching(example: Project, databases: dict[str, str | None], branch: str = "b") -> tuple[FakeCluster, object]:
    (example.root / ".git").mkdir(exist_ok=True)
    (example.root / ".git" / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    cluster = FakeCluster(databases={"postgres": marks.cluster_mark(example.name, example.checkout), **databases})
    return cluster, FakeConnectors(cluster=cluster)


def _per_branch(example: Project) -> Project:
    from dataclasses import replace

    from devenv.project.config import DbConfig

    return replace(example, config=replace(example.config, db=DbConfig(per_branch=True)))


def test_a_switch_parks_the_app_database_and_renames_the_branchs_own_in_one_transaction(example: Project) -> None:
    project = _per_branch(example)
    db = context_of(project).settings.pg_db
    cluster, connectors = _switching(
        project, {db: marks.seeded_branch_mark("a"), marks.branch_name(db, "b"): marks.branch_mark("b")}
    )
    result = branches.switch(context_of(project, connectors=connectors))
    assert result.switched and result.brought == "own" and result.parked_as == f"{db}__branch_a"
    swap = cluster.statements[-1]
    assert swap.split("; ") == [
        f'ALTER DATABASE "{db}" RENAME TO "{db}__branch_a"',
        f"COMMENT ON DATABASE \"{db}__branch_a\" IS 'devenv-branch:a'",
        f'ALTER DATABASE "{db}__branch_b" RENAME TO "{db}"',
        f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true',
        f"COMMENT ON DATABASE \"{db}\" IS 'devenv:seeded:branch=b'",
    ]
    assert not [s for s in cluster.statements if s.startswith("DROP")]  # nothing dropped on a switch


def test_a_reset_on_another_branch_parks_the_old_database_and_resets_the_checked_out_branchs(
    example: Project,
) -> None:
    project = _per_branch(example)
    db = context_of(project).settings.pg_db
    cluster, connectors = _switching(
        project, {db: marks.seeded_branch_mark("a"), marks.branch_name(db, "b"): marks.branch_mark("b")}
    )
    result = branches.switch(context_of(project, connectors=connectors), for_reset=True)
    assert result.switched and result.brought == "none"
    assert cluster.statements[-2].split("; ") == [
        f'ALTER DATABASE "{db}" RENAME TO "{db}__branch_a"',
        f"COMMENT ON DATABASE \"{db}__branch_a\" IS 'devenv-branch:a'",
    ]
    assert cluster.statements[-1] == f'DROP DATABASE IF EXISTS "{db}__branch_b" WITH (FORCE)'  # what reset resets
    empty, connectors = _switching(project, {})  # no app database at all: nothing to park
    assert branches.switch(context_of(project, connectors=connectors), for_reset=True).switched
    assert not [s for s in empty.statements if s.startswith("ALTER")]


def test_a_switch_adopts_a_database_of_no_branch_and_does_nothing_on_the_same_branch(example: Project) -> None:
    project = _per_branch(example)
    db = context_of(project).settings.pg_db
    cluster, connectors = _switching(project, {db: marks.SEEDED_MARK})
    assert branches.switch(context_of(project, connectors=connectors)).how == "adopted"
    assert cluster.databases[db] == "devenv:seeded:branch=b"
    before = len(cluster.statements)
    assert branches.switch(context_of(project, connectors=connectors)).how == "same"
    assert not [s for s in cluster.statements[before:] if not s.startswith("SELECT")]


def test_a_switch_refuses_databases_in_the_way_and_changes_nothing(example: Project) -> None:
    project = _per_branch(example)
    db = context_of(project).settings.pg_db
    for in_the_way in (f"{db}__branch_a", f"{db}__branch_b"):
        cluster, connectors = _switching(project, {db: marks.seeded_branch_mark("a"), in_the_way: None})
        with pytest.raises(NotOurDatabase, match="does not carry devenv's mark") as err:
            branches.switch(context_of(project, connectors=connectors))
        assert "DROP" not in (err.value.hint or "")
        assert not [s for s in cluster.statements if s.startswith(("ALTER", "DROP", "CREATE"))]
    cluster, connectors = _switching(project, {db: marks.seeded_branch_mark("a"), f"{db}__branch_a": "devenv-branch:a"})
    with pytest.raises(UsageError, match="has a parked database already"):
        branches.switch(context_of(project, connectors=connectors))


def test_switching_is_off_unless_asked_and_needs_a_branch(example: Project) -> None:
    assert branches.switch(context_of(example)).how == "off"
    project = _per_branch(example)
    (project.root / ".git").mkdir(exist_ok=True)
    (project.root / ".git" / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    assert branches.switch(context_of(project)).how == "detached"


def test_the_hook_is_devenvs_own_and_someone_elses_is_refused(example: Project) -> None:
    _git(example.root, "init", "-q")
    written = branches.install_hook(example)
    hook = example.root / ".git" / "hooks" / "post-checkout"
    assert "written" in written and hook.stat().st_mode & 0o111
    text = hook.read_text()
    assert branches.HOOK_MARK in text and '[ "$3" = 1 ] || exit 0' in text and "db switch --quiet" in text
    branches.install_hook(example)  # its own is replaced
    hook.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(UsageError, match="is not devenv's"):
        branches.install_hook(example)
    assert hook.read_text() == "#!/bin/sh\necho mine\n"


def test_clones_are_refused_without_a_current_template_or_with_an_unmarked_database_in_the_way(
    example: Project,
) -> None:
    ctx = context_of(example)
    db, key = ctx.settings.pg_db, ctx.migrations_key
    mark = marks.cluster_mark(example.name, example.checkout)
    cluster = FakeCluster(databases={"postgres": mark})
    with pytest.raises(StackNotRunning, match="no template"):
        make_clones(context_of(example, connectors=FakeConnectors(cluster=cluster)), 2)
    cluster.databases[marks.template_name(db)] = marks.template_mark("older")
    with pytest.raises(UsageError, match="other migrations"):
        make_clones(context_of(example, connectors=FakeConnectors(cluster=cluster)), 2)
    cluster.databases[marks.template_name(db)] = marks.template_mark(key)
    cluster.databases[marks.clone_name(db, 2)] = None  # someone's own database
    with pytest.raises(NotOurDatabase, match="not one of devenv's clones"):
        make_clones(context_of(example, connectors=FakeConnectors(cluster=cluster)), 2)
    assert not [s for s in cluster.statements if s.startswith(("CREATE", "DROP"))]
    with pytest.raises(UsageError, match="between 0 and 64"):
        check_count(65)


def test_clones_export_a_url_per_worker_and_the_count() -> None:
    from devenv.commands.clones import Clone

    result = ClonesResult("q", "q__devenv_template", "k", (Clone(1, "q_w1", "u1", "m1"), Clone(2, "q_w2", "u2", "m2")),
                          (), 0.1)  # fmt: skip
    assert result.variables() == {"DATABASE_URL_1": "u1", "DATABASE_URL_2": "u2", "DEVENV_WORKERS": "2"}
    assert split_passthrough(["run", "--workers", "3", "--", "npm", "test"]) == (
        ["run", "--workers", "3"],
        ["npm", "test"],
    )


def test_the_copy_strategy_follows_the_size_and_the_server_version() -> None:
    assert strategy_for(8_000_000, 150004) == "WAL_LOG"
    assert strategy_for(FILE_COPY_FROM, 150004) == "FILE_COPY"
    assert strategy_for(2_000_000_000, 140009) is None  # no STRATEGY before Postgres 15
    assert strategy_for(None, 160000) is None

    from types import SimpleNamespace

    conn = SimpleNamespace(parameters={"server_version": "15.10 (Debian 15.10-0+deb12u1)"})
    assert server_version(conn) == 150010  # type: ignore[arg-type]


def test_clones_and_branches_print_masked_urls_and_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    from devenv.cli.output import print_branches, print_clones
    from devenv.commands.branches import BranchDatabase, BranchList
    from devenv.commands.clones import Clone

    clone = Clone(1, "q_w1", "postgresql://app:s3cret@127.0.0.1:5432/q_w1", "postgresql://app:***@127.0.0.1:5432/q_w1")
    print_clones(ClonesResult("q", "q__devenv_template", "k", (clone,), (), 0.12, "WAL_LOG"), as_json=False)
    out = capsys.readouterr().out
    assert "DATABASE_URL_1" in out and "***" in out and "s3cret" not in out and "WAL_LOG" in out
    print_clones(ClonesResult("q", "q__devenv_template", "k", (), ("q_w1",), 0.01), as_json=False)
    assert "no clones now (dropped: q_w1)" in capsys.readouterr().out
    found = BranchList(True, "a", (BranchDatabase("a", "q", 8_000_000, True, "checked out"),
                                   BranchDatabase("b", "q__branch_b", None, False, "parked")))  # fmt: skip
    print_branches(found, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "databases per branch (on)"
    assert lines[3].split() == ["*", "a", "q", "8.0", "MB", "checked", "out"]
    assert lines[4].split() == ["b", "q__branch_b", "-", "parked"]
