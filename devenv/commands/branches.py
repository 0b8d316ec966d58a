"""A database per git branch (`[db] per_branch = true`): the app database follows the checked-out branch.

The app database's seeded mark names the branch it belongs to (devenv.db.marks). When `up`, `reset` or the optional
post-checkout hook (`devenv db switch`) finds another branch checked out, the app database is parked under the old
branch's name (`<db>__branch_<branch>`, marked with the branch) and the new branch's own database, or a fresh copy
of the template (the spare when one is ready), is renamed into its place. The app's DATABASE_URL never changes,
nothing is copied at a switch when both branches have a database, and every rename happens in one transaction: a
failed step leaves the previous database in place. `reset` parks the old branch's database too, and resets the
checked-out branch's. The branch is read from git's own files (`.git/HEAD`; in a worktree, the HEAD its `.git` file
points at), so no git process is started; a detached HEAD leaves the database as it is.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devenv.clients.pgwire import Connection, PgError
from devenv.clients.pgwire import quote_ident as ident
from devenv.clients.pgwire import quote_literal as lit
from devenv.commands.reset import ResetResult
from devenv.core.errors import NotOurDatabase, UsageError
from devenv.db import marks
from devenv.project.context import Context
from devenv.project.discovery import Project

APPLICATION_NAME = "devenv-branches"
HOOK_MARK = "# devenv: post-checkout hook (devenv hooks install)"


@dataclass(frozen=True)
class SwitchResult:
    """What a switch did: `how` is off | detached | same | adopted | switched."""

    how: str
    branch: str | None = None
    previous: str | None = None
    parked_as: str = ""  # where the previous branch's database went
    brought: str = ""  # own | template | spare | empty | none (reset: the branch's database is reset next)
    note: str = ""

    @property
    def switched(self) -> bool:
        return self.how == "switched"

    @property
    def needs_migrations(self) -> bool:
        """The app database is new and empty: `up` must migrate and seed it."""
        return self.brought == "empty"


@dataclass(frozen=True)
class BranchDatabase:
    """One branch's database: the app database (current) or a parked one."""

    branch: str
    database: str
    size: int | None
    current: bool
    state: str  # checked out | parked


@dataclass(frozen=True)
class BranchList:
    """`devenv db branches`: whether per-branch databases are on, git's branch, and the databases."""

    enabled: bool
    checked_out: str | None
    branches: tuple[BranchDatabase, ...]


def git_dir(root: Path) -> Path | None:
    """The git directory of the checkout holding ROOT: `.git`, or a worktree's (from its `.git` file)."""
    for folder in (root, *root.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            text = dot.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:") :].strip())
                return target if target.is_absolute() else (folder / target).resolve()
            return None
    return None


def current_branch(root: Path) -> str | None:
    """The branch checked out in ROOT's checkout (None: not in git, or a detached HEAD)."""
    found = git_dir(root)
    if found is None:
        return None
    try:
        head = (found / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    prefix = "ref: refs/heads/"
    return head[len(prefix) :] if head.startswith(prefix) else None


def _refuse_foreign(name: str, found: tuple[str, str | None] | None, expected: str) -> None:
    if found is not None and found[1] != expected:
        raise NotOurDatabase(
            f"the database {name!r} exists and does not carry devenv's mark {expected!r}; devenv never touches it.",
            "rename that database (ALTER DATABASE … RENAME TO …), or use another POSTGRES_DB.",
        )


def _incoming(ctx: Context, conn: Connection, branch: str) -> tuple[str, str]:
    """A database ready to become BRANCH's app database: (name, how) — its parked one, the spare, a fresh copy of
    the template, or an empty one (when the template is from other migrations: `up` then migrates and seeds)."""
    from devenv.db.copies import create_copy

    db, key, owner = ctx.settings.pg_db, ctx.migrations_key, ctx.settings.pg_user
    parked = marks.branch_name(db, branch)
    if conn.database(parked) is not None:
        return parked, "own"
    tmpl = marks.template_name(db)
    tmpl_oid, tmpl_mark = conn.database(tmpl) or ("", None)
    staging = marks.incoming_name(db)
    if conn.database(staging) is not None:  # left by a switch that failed: never anyone's data
        conn.execute(f"DROP DATABASE {ident(staging)} WITH (FORCE)")
    if tmpl_mark == marks.template_mark(key):
        if ctx.config.reset.spare:
            from devenv.db import spare

            spare.wait(ctx.project.state_dir)
            spare_name = marks.spare_name(db)
            found = conn.database(spare_name)
            if found is not None and found[1] == marks.spare_mark(key, tmpl_oid):
                return spare_name, "spare"
        create_copy(conn, staging, tmpl, owner)
        return staging, "template"
    conn.execute(f"CREATE DATABASE {ident(staging)} OWNER {ident(owner)}")
    return staging, "empty"


def _park(
    conn: Connection, db: str, parked: str, previous: str, incoming: str | None, branch: str, empty: bool
) -> None:
    """One transaction: DB becomes PARKED (PREVIOUS's), INCOMING becomes DB (BRANCH's); or nothing changed."""
    from devenv.db.templates import end_connections

    found = conn.database(db) is not None
    statements = []
    if found:
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
    try:
        if found:
            end_connections(conn, db)
            statements += [
                f"ALTER DATABASE {ident(db)} RENAME TO {ident(parked)}",
                f"COMMENT ON DATABASE {ident(parked)} IS {lit(marks.branch_mark(previous))}",
            ]
        if incoming is not None:
            mark = "NULL" if empty else lit(marks.seeded_branch_mark(branch))
            statements += [
                f"ALTER DATABASE {ident(incoming)} RENAME TO {ident(db)}",
                f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true",
                f"COMMENT ON DATABASE {ident(db)} IS {mark}",
            ]
        if statements:
            conn.execute("; ".join(statements))
    except (PgError, OSError):
        if found:
            with contextlib.suppress(PgError, OSError):  # leave it as it was: open to the app
                conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
        raise


def _switch(ctx: Context, conn: Connection, branch: str, *, for_reset: bool) -> SwitchResult:
    db = ctx.settings.pg_db
    found = conn.database(db)
    mark = found[1] if found else None
    previous = marks.owning_branch(mark)
    if previous == branch:
        return SwitchResult("same", branch, previous, note=f"{db}: the database of branch {branch!r}.")
    if previous is None and found is not None:
        if mark is not None and mark.startswith(marks.SEEDED_MARK):
            conn.execute(f"COMMENT ON DATABASE {ident(db)} IS {lit(marks.seeded_branch_mark(branch))}")
            return SwitchResult("adopted", branch, None, note=f"{db}: now the database of branch {branch!r}.")
        # Not seeded yet: a new database, which becomes the branch's once `up` has seeded it.
        return SwitchResult("same", branch, None)
    parked = marks.branch_name(db, previous) if previous else ""
    if previous:
        in_the_way = conn.database(parked)
        _refuse_foreign(parked, in_the_way, marks.branch_mark(previous))
        if in_the_way is not None:
            raise UsageError(
                f"branch {previous!r} has a parked database already ({parked}) besides the app database {db}, "
                "which is that branch's too; devenv keeps both and switches nothing.",
                f"rename one of them (ALTER DATABASE {parked} RENAME TO …) to keep it, then run again.",
            )
    own = marks.branch_name(db, branch)
    _refuse_foreign(own, conn.database(own), marks.branch_mark(branch))
    if for_reset:  # the reset gives the checked-out branch a fresh database: its parked one is what it resets
        _park(conn, db, parked, previous or "", None, branch, empty=False)
        conn.execute(f"DROP DATABASE IF EXISTS {ident(own)} WITH (FORCE)")
        incoming, how = None, "none"
    else:
        incoming, how = _incoming(ctx, conn, branch)
        try:
            _park(conn, db, parked, previous or "", incoming, branch, empty=how == "empty")
        except BaseException:
            if how in {"template", "empty"}:
                with contextlib.suppress(PgError, OSError):
                    conn.execute(f"DROP DATABASE IF EXISTS {ident(incoming)} WITH (FORCE)")
            raise
    brought = {
        "own": "its own database back",
        "spare": "a fresh copy of the template",
        "template": "a fresh copy of the template",
        "empty": "a new database (the template is from other migrations: `up` migrates and seeds it)",
        "none": "a fresh database (reset)",
    }[how]
    parked_note = f"parked {previous!r}'s database as {parked}; " if previous else ""
    note = f"{db}: branch {branch!r} checked out: {parked_note}{branch!r} gets {brought}."
    return SwitchResult("switched", branch, previous, parked, how, note)


def switch(ctx: Context, *, for_reset: bool = False) -> SwitchResult:
    """Make the app database the checked-out branch's (see the module's docstring); nothing when it is off."""
    from devenv.db.templates import stack_session

    if not ctx.config.db.per_branch:
        return SwitchResult("off", note="per-branch databases are off ([db] per_branch = true turns them on).")
    branch = current_branch(ctx.project.root)
    if branch is None:
        return SwitchResult("detached", note="no branch checked out (detached HEAD, or not a git checkout): the "
                            "database stays as it is.")  # fmt: skip
    with stack_session(ctx, "switches the database of", APPLICATION_NAME) as (live, conn):
        result = _switch(live, conn, branch, for_reset=for_reset)
    if result.brought == "spare":
        from devenv.db.templates import start_spare

        start_spare(live, live.migrations_key)  # the next reset's (or switch's) copy
    return result


def reset_on_branch(ctx: Context, on_step: Callable[[str], None] = lambda s: None) -> ResetResult:
    """The soft reset; with per-branch databases, the old branch's database is parked first, and the fresh one is
    the checked-out branch's."""
    from devenv.commands.reset import soft_reset
    from devenv.db.templates import stack_session

    if not ctx.config.db.per_branch:
        return soft_reset(ctx, on_step=on_step)
    result = switch(ctx, for_reset=True)
    if result.switched:
        on_step(result.note)
    done = soft_reset(ctx, on_step=on_step)
    if result.branch is not None:
        with stack_session(ctx, "marks the database of", APPLICATION_NAME) as (_, conn):
            mark = lit(marks.seeded_branch_mark(result.branch))
            conn.execute(f"COMMENT ON DATABASE {ident(done.database)} IS {mark}")
    return done


def list_branches(ctx: Context) -> BranchList:
    """The app database (and whose branch it is) and every parked branch database, with their sizes."""
    from devenv.db.templates import stack_session

    db = ctx.settings.pg_db
    with stack_session(ctx, "lists the databases of", APPLICATION_NAME) as (_, conn):
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database'), pg_database_size(oid) FROM pg_database "
            f"WHERE datname = {lit(db)} OR shobj_description(oid, 'pg_database') LIKE {lit(marks.BRANCH_MARK + '%')}"
        )
    found: list[BranchDatabase] = []
    for name, mark, size in rows:
        number = int(size) if size and size.isdigit() else None
        if name == db:
            owner = marks.owning_branch(mark) or "(none yet)"
            found.append(BranchDatabase(owner, str(name), number, True, "checked out"))
        elif mark:
            found.append(BranchDatabase(mark[len(marks.BRANCH_MARK) :], str(name), number, False, "parked"))
    found.sort(key=lambda b: (not b.current, b.branch))
    return BranchList(ctx.config.db.per_branch, current_branch(ctx.project.root), tuple(found))


def hook_text(project: Project) -> str:
    """The post-checkout hook: on a branch checkout ($3 = 1), `devenv db switch --quiet`; it never fails one."""
    devenv = f"{shlex.quote(sys.executable)} -m devenv"
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARK}\n"
        "# Switches the app database to the checked-out branch's ([db] per_branch). A checkout never fails for it.\n"
        '[ "$3" = 1 ] || exit 0\n'
        f"{devenv} -C {shlex.quote(str(project.root))} db switch --quiet || "
        "echo 'devenv: the database was not switched; `devenv up` does it.' >&2\n"
        "exit 0\n"
    )


def hooks_dir(project: Project) -> Path:
    """Where git looks for this checkout's hooks (`git rev-parse --git-path hooks`: worktrees, core.hooksPath)."""
    from devenv.core import proc

    done = proc.run(["git", "rev-parse", "--git-path", "hooks"], cwd=project.root)
    if not done.ok or not done.stdout.strip():
        raise UsageError(
            f"{project.root} is not in a git checkout (`git rev-parse` said: {done.output.strip()[:200]}).",
            "per-branch databases follow git branches: run `git init` or use devenv inside a git checkout.",
        )
    path = Path(done.stdout.strip())
    return path if path.is_absolute() else project.root / path


def install_hook(project: Project) -> str:
    """Write the post-checkout hook (devenv's own is replaced, anyone else's is refused); what was done."""
    from devenv.core.state import atomic_write

    hook = hooks_dir(project) / "post-checkout"
    if hook.exists() and HOOK_MARK not in hook.read_text(encoding="utf-8", errors="replace"):
        raise UsageError(
            f"{hook} exists and is not devenv's; devenv leaves it as it is.",
            f"add this line to it: {sys.executable} -m devenv -C '{project.root}' db switch --quiet",
        )
    atomic_write(hook, hook_text(project), 0o755)
    note = "" if project.config.db.per_branch else " ([db] per_branch = true turns per-branch databases on)"
    return f"{hook}: written; each branch checkout now switches the database{note}."
