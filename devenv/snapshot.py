"""`devenv reset`: restore the app database from a template copy taken right after migrate + seed.

Postgres clones a database from a template in tens of milliseconds, and a spare copy of the template kept ready
(devenv.spare) turns even that into a rename, so a soft reset costs about as much as starting the CLI. The template
is tagged with a key (hash of the Prisma folder and config); when the key no longer matches, reset migrates and
seeds a fresh database and takes a new template.

Safety: devenv only ever touches the app database, its template and its spare, only on the stack's own Postgres
(the cluster carries devenv's mark), and only when DATABASE_URL in .env points at that Postgres.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from devenv.envfile import StackSettings
from devenv.errors import DevenvError, UsageError
from devenv.pgwire import Connection, PgError, UnsupportedServer, connect, credentials_refused
from devenv.pgwire import quote_ident as ident
from devenv.pgwire import quote_literal as lit
from devenv.project import Project
from devenv.runtime import Runtime

CLUSTER_MARK = "devenv-project:"
TEMPLATE_MARK = "devenv-template:"
SEEDED_MARK = "devenv:seeded"
OBJECT_IN_USE = "55006"  # SQLSTATE: "source database ... is being accessed by other users"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class NotOurDatabase(UsageError):
    """reset refused: the database is not the stack's own."""


@dataclass(frozen=True)
class ResetResult:
    """What a reset did and how long it took."""

    mode: str  # template | remigrated | hard
    database: str
    template: str
    key: str
    seconds: float
    redis_flushed: bool
    reason: str = ""
    from_spare: bool = False  # the ready copy was renamed into place (no copy on the reset's own time)


MAX_NAME_BYTES = 63  # Postgres' identifier limit (NAMEDATALEN - 1), in bytes


def _suffixed(db: str, suffix: str) -> str:
    """DB + SUFFIX; when that exceeds Postgres' 63 bytes, a hash of DB + SUFFIX (never DB itself, never cut)."""
    name = db + suffix
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    return f"devenv_{hashlib.sha256(db.encode()).hexdigest()[:16]}{suffix}"


def template_name(db: str) -> str:
    """The template database's name for app database DB."""
    return _suffixed(db, "__devenv_template")


def spare_name(db: str) -> str:
    """The name of the ready copy of DB's template (see devenv.spare)."""
    return _suffixed(db, "__devenv_spare")


def reset_key(project: Project) -> str:
    """Hash of everything that shapes a fresh database: the prisma folder (schema, migrations, seed) and config."""
    server = project.server_dir
    files = sorted(p for p in (server / "prisma").rglob("*") if p.is_file())
    files += sorted(p for p in server.glob("prisma.config.*") if p.is_file())
    files += sorted(p for p in server.glob("seed.*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(server)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(" ".join(project.config.migrate.command).encode())
    digest.update(" ".join(project.config.migrate.seed_command).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Target:
    """The Postgres a reset would touch."""

    host: str
    port: int
    user: str
    password: str
    db: str


def target_from_env(project: Project, settings: StackSettings, stack_host: str, stack_port: int) -> Target:
    """The app's database as DATABASE_URL in .env names it; refuse anything that is not this stack's Postgres."""
    from devenv.envfile import read_env

    url = read_env(project).get("DATABASE_URL", "")
    if url:
        parsed = urlparse(url)
        host = parsed.hostname or ""
        port = parsed.port or 5432
        hosts = LOCAL_HOSTS | {stack_host}
        if host not in hosts or port != stack_port:
            raise NotOurDatabase(
                f"DATABASE_URL in {project.env_file} points at {host}:{port}, not this stack's Postgres "
                f"({stack_host}:{stack_port}); devenv resets only its own database.",
                "point DATABASE_URL at the stack (delete the line and run `devenv env`), or reset that database "
                "with its own tools.",
            )
        db = unquote(parsed.path.lstrip("/")) or settings.pg_db
        if db != settings.pg_db:
            raise NotOurDatabase(
                f"DATABASE_URL in {project.env_file} names database {db!r}, but the stack's is {settings.pg_db!r}.",
                "make POSTGRES_DB and DATABASE_URL agree in .env.",
            )
    return Target(stack_host, stack_port, settings.pg_user, settings.pg_password, settings.pg_db)


def _connect(t: Target, dbname: str) -> Connection:
    return connect(t.host, t.port, t.user, t.password, dbname, application_name="devenv-reset")


def mark_cluster(conn: Connection, project_name: str) -> None:
    """Write devenv's mark on the cluster's `postgres` database (done by `up` on the stack's own container)."""
    conn.execute(f"COMMENT ON DATABASE postgres IS {lit(CLUSTER_MARK + project_name)}")


def verify_cluster(conn: Connection, project: Project, t: Target) -> None:
    """Refuse unless this Postgres carries this stack's mark."""
    _, mark = conn.database("postgres") or ("", None)
    if mark != CLUSTER_MARK + project.name:
        raise NotOurDatabase(
            f"the Postgres at {t.host}:{t.port} is not the {project.name!r} stack's own container "
            f"(mark: {mark!r}); devenv resets only its own database.",
            "start this project's stack with `devenv up`, or check DEVENV_POSTGRES_PORT / postgres.port.",
        )


def _others_connected(conn: Connection, db: str) -> bool:
    return bool(
        conn.execute(f"SELECT 1 FROM pg_stat_activity WHERE datname = {lit(db)} AND pid <> pg_backend_pid() LIMIT 1")
    )


def end_connections(conn: Connection, db: str) -> None:
    """Terminate every other session on DB and wait (polling every 2 ms, up to 5 s) until they are gone.

    DROP DATABASE ... WITH (FORCE) and pg_terminate_backend(pid, timeout) do this too, but poll in 100 ms steps:
    a reset while the server holds a pooled connection would spend most of its time asleep.
    """
    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {lit(db)} AND pid <> pg_backend_pid()"
    )
    if not _others_connected(conn, db):
        return  # the usual case: importing tenacity would cost more than the wait
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    retrying = Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.002), retry=retry_if_result(bool))
    with contextlib.suppress(RetryError):  # still there after 5 s: DROP ... WITH (FORCE) reports it
        retrying(_others_connected, conn, db)


def _drop(conn: Connection, db: str) -> None:
    if conn.database(db) is not None:
        # New connections are refused first, so the server's pool cannot slip back in between FORCE and CREATE.
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
        try:
            end_connections(conn, db)
            conn.execute(f"DROP DATABASE {ident(db)} WITH (FORCE)")
        except PgError:
            with contextlib.suppress(PgError, OSError):  # leave it as it was: open to the app
                conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
            raise


def _recreate(conn: Connection, db: str, owner: str, template: str | None) -> None:
    _drop(conn, db)
    source = f" TEMPLATE {ident(template)}" if template else ""
    conn.execute(f"CREATE DATABASE {ident(db)}{source} OWNER {ident(owner)}")


def _restore(
    conn: Connection,
    t: Target,
    template: tuple[str, str],
    key: str,
    spares: Path | None,
    on_step: Callable[[str], None],
) -> bool:
    """Put a fresh copy of TEMPLATE (name, oid) in place of the app database, marked seeded: the spare when one
    of this very template is ready (True), else a copy made now."""
    tmpl, tmpl_oid = template
    if spares is not None:
        from devenv import spare

        # One being made now is done sooner than a copy started now.
        spare.wait(spares, on_wait=lambda: on_step("waiting for the ready copy the last reset started"))
        name = spare_name(t.db)
        found = conn.database(name)
        if found and found[1] == spare.spare_mark(key, tmpl_oid):
            _drop(conn, t.db)
            # One message, one transaction: the copy is in place, open and marked seeded, or nothing changed.
            conn.execute(
                f"ALTER DATABASE {ident(name)} RENAME TO {ident(t.db)}; "
                f"ALTER DATABASE {ident(t.db)} WITH ALLOW_CONNECTIONS true; "
                f"COMMENT ON DATABASE {ident(t.db)} IS {lit(SEEDED_MARK)}"
            )
            return True
        if found:  # unfinished, or made from an older template
            conn.execute(f"DROP DATABASE {ident(name)} WITH (FORCE)")
    _recreate(conn, t.db, t.user, tmpl)
    conn.execute(f"COMMENT ON DATABASE {ident(t.db)} IS {lit(SEEDED_MARK)}")
    return False


def start_spare(project: Project, t: Target, key: str) -> bool:
    """Make the next reset's spare in the background (when [reset] spare is on); False when none was started.

    A CI stack is thrown away after its tests: a spare would only cost it CPU.
    """
    if not project.config.reset.spare or project.ci:
        return False
    from devenv import spare

    settings = {
        "host": t.host,
        "port": t.port,
        "user": t.user,
        "password": t.password,
        "spare": spare_name(t.db),
        "template": template_name(t.db),
        "template_mark": TEMPLATE_MARK + key,
        "key": key,
    }
    return spare.start(project.state_dir, settings)


def take_template(conn: Connection, db: str, key: str, state_dir: Path) -> None:
    """Copy DB into its template (closing DB's connections for the copy) and tag it with KEY; drop the old spare."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

    from devenv import spare

    tmpl = template_name(db)
    spare.wait(state_dir, timeout=60)
    # One still copying the old template after that: stop it (its CREATE DATABASE then leaves nothing behind).
    conn.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = {lit(spare.APPLICATION_NAME)}"
    )
    conn.execute(f"DROP DATABASE IF EXISTS {ident(spare_name(db))} WITH (FORCE)")
    conn.execute(f"DROP DATABASE IF EXISTS {ident(tmpl)} WITH (FORCE)")
    conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS false")
    try:
        end_connections(conn, db)
        # A backend can still be on its way out: retry while Postgres says the source is in use.
        retrying = Retrying(
            stop=stop_after_delay(5),
            wait=wait_fixed(0.02),
            retry=retry_if_exception(lambda ex: isinstance(ex, PgError) and ex.sqlstate == OBJECT_IN_USE),
            reraise=True,
        )
        retrying(conn.execute, f"CREATE DATABASE {ident(tmpl)} TEMPLATE {ident(db)}")
    finally:
        conn.execute(f"ALTER DATABASE {ident(db)} WITH ALLOW_CONNECTIONS true")
    conn.execute(f"ALTER DATABASE {ident(tmpl)} WITH ALLOW_CONNECTIONS false")
    conn.execute(f"COMMENT ON DATABASE {ident(tmpl)} IS {lit(TEMPLATE_MARK + key)}")


def resp_command(*args: str) -> bytes:
    """One Redis command in RESP, the protocol's wire format."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def flush_redis(host: str, port: int, password: str, db: int, *, timeout: float = 5.0) -> None:
    """AUTH, SELECT and FLUSHDB over one socket, pipelined.

    The one Redis call on reset's hot path speaks RESP itself: importing redis-py (~40-80 ms, it pulls in asyncio)
    would cost more than the whole Postgres clone. Every other Redis call in devenv goes through redis-py.
    """
    import socket

    commands = ([("AUTH", password)] if password else []) + ([("SELECT", str(db))] if db else []) + [("FLUSHDB",)]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(resp_command(*c) for c in commands))
        replies = sock.makefile("rb")
        for command in commands:
            line = replies.readline().decode(errors="replace").strip()
            if not line.startswith("+"):
                raise DevenvError(
                    f"redis on {host}:{port} answered {command[0]} with {line or 'nothing'!r}.",
                    "check REDIS_PASSWORD / REDIS_URL in .env and `devenv status`.",
                )


def _flush_redis(settings: StackSettings, host: str, port: int) -> None:
    flush_redis(host, port, settings.redis_password, settings.redis_db)


def _migrate_and_seed(project: Project, runtime: Runtime) -> None:
    runtime.build(["server"])  # the migrate job runs the server image: it must carry the new migrations
    from devenv.jobs import run_job

    for argv in (project.config.migrate.command, project.config.migrate.seed_command):
        if argv:
            run_job(
                runtime,
                argv,
                failure="`{argv}` exited with code {code} while re-creating the database.",
                hint="fix the migration or seed, then run `devenv reset` again.",
            )


def soft_reset(
    project: Project,
    runtime: Runtime,
    *,
    stack_host: str,
    postgres_port: int,
    redis_port: int | None,
    on_step: Callable[[str], None] = lambda s: None,
) -> ResetResult:
    """Restore the app database from its template (or re-migrate + re-template when the key changed)."""
    t0 = time.perf_counter()
    from devenv.envfile import stack_settings

    settings = stack_settings(project)
    target = target_from_env(project, settings, stack_host, postgres_port)
    key = reset_key(project)
    tmpl = template_name(target.db)

    with _connect(target, "postgres") as conn:
        verify_cluster(conn, project, target)
        tmpl_oid, tmpl_comment = conn.database(tmpl) or ("", None)
        if tmpl_comment == TEMPLATE_MARK + key:
            spares = project.state_dir if project.config.reset.spare else None
            from_spare = _restore(conn, target, (tmpl, tmpl_oid), key, spares, on_step)
            mode, reason = "template", ""
        else:
            reason = "no template yet" if tmpl_comment is None else "migrations, schema or seed changed"
            on_step(f"re-creating {target.db}: {reason}; running migrations and seed")
            _recreate(conn, target.db, target.user, None)
            _migrate_and_seed(project, runtime)
            take_template(conn, target.db, key, project.state_dir)
            conn.execute(f"COMMENT ON DATABASE {ident(target.db)} IS {lit(SEEDED_MARK)}")
            mode, from_spare = "remigrated", False
    start_spare(project, target, key)
    if redis_port:
        try:
            _flush_redis(settings, stack_host, redis_port)
        except (OSError, DevenvError) as ex:
            raise DevenvError(
                f"the database was reset, but flushing Redis failed: {getattr(ex, 'message', ex)}",
                "check `devenv status`.",
            ) from ex
    return ResetResult(
        mode=mode,
        database=target.db,
        template=tmpl,
        key=key,
        seconds=round(time.perf_counter() - t0, 3),
        redis_flushed=bool(redis_port),
        reason=reason,
        from_spare=from_spare,
    )


def soft_reset_stack(
    project: Project, runtime: Runtime, on_step: Callable[[str], None] = lambda s: None
) -> ResetResult:
    """Soft reset of the running stack: find its Postgres and Redis, then `soft_reset`."""
    from devenv.errors import StackNotRunning

    cfg = project.config
    published = {} if cfg.postgres.port and cfg.redis.port else runtime.published_ports()
    pg_port = cfg.postgres.port or published.get(("postgres", 5432))
    redis_port = cfg.redis.port or published.get(("redis", 6379))
    host = runtime.host_address()
    if not pg_port:
        raise StackNotRunning("postgres is not running.", "start the stack with `devenv up`.")
    try:
        return soft_reset(
            project, runtime, stack_host=host, postgres_port=pg_port, redis_port=redis_port, on_step=on_step
        )
    except PgError as ex:
        if credentials_refused(ex):
            from devenv.wait import RESET_HARD_HINT

            raise StackNotRunning(
                f"postgres at {host}:{pg_port} refused the credentials in .env: {ex.message}", RESET_HARD_HINT
            ) from ex
        raise DevenvError(
            f"postgres at {host}:{pg_port} refused the reset: {ex.message} (SQLSTATE {ex.sqlstate})",
            ex.hint or "see `devenv logs postgres`; `devenv reset --hard` starts over from new volumes.",
        ) from ex
    except UnsupportedServer as ex:
        raise DevenvError(
            f"postgres at {host}:{pg_port}: {ex}",
            "devenv needs password or SCRAM-SHA-256 authentication (the official image's default).",
        ) from ex
    except OSError as ex:
        raise StackNotRunning(
            f"postgres at {host}:{pg_port} is not answering: {ex}",
            "start the stack with `devenv up` (or check `devenv status`).",
        ) from ex


def hard_reset(project: Project, runtime: Runtime, *, timeout: float = 60.0) -> ResetResult:
    """`down --volumes` + `up`: new volumes, migrations, seed and template."""
    from devenv.envfile import stack_settings
    from devenv.stack import up

    t0 = time.perf_counter()
    runtime.down(volumes=True)  # a spare being made is cut off: unmarked, it is never used
    up(project, runtime, timeout=timeout)
    db = stack_settings(project).pg_db
    return ResetResult(
        mode="hard",
        database=db,
        template=template_name(db),
        key=reset_key(project),
        seconds=round(time.perf_counter() - t0, 3),
        redis_flushed=True,
        reason="volumes dropped",
    )
