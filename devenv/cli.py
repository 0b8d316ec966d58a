"""The typer app: each command validates options, calls one core function and renders its result.

Heavy libraries (python-on-whales, docker, redis) are imported inside the commands that need them,
so `devenv --help` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from devenv import __version__
from devenv.errors import DevenvError, ExitCode

if TYPE_CHECKING:
    from devenv.project import Project
    from devenv.runtime import DockerRuntime

app = typer.Typer(
    name="devenv",
    help="From a fresh clone to a migrated, healthy local stack (Postgres, Redis, your server) with one command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's help renderer imports markdown-it and costs ~50 ms on every `--help`.
    rich_markup_mode=None,
)


@dataclass
class Globals:
    """Options given before the command."""

    project_dir: Path | None = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"devenv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    project_dir: Path | None = typer.Option(
        None, "-C", "--project-dir", help="Run as if started in DIR (the project root or any folder inside it)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    ctx.obj = Globals(project_dir=project_dir)


# -- env / render ---------------------------------------------------------------------------------------------------
@app.command("env")
def env_command(
    ctx: typer.Context,
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 when .env lacks template keys or has keys the template dropped."
    ),
) -> None:
    """Create or complete .env from .env.template (existing values are never changed; secrets are generated)."""
    from devenv.envfile import check_env, ensure_env
    from devenv.errors import CheckFailed
    from devenv.project import load_project

    project = load_project(ctx.obj.project_dir)
    if check:
        report = check_env(project)
        for item in report.missing:
            typer.echo(f"missing: {item.key} (template {item.where()})")
        for item in report.extra:
            typer.echo(f"extra:   {item.key} ({item.where()}; the template no longer has it)")
        if report.drift:
            raise CheckFailed(
                f"{report.env_file} is out of step with {report.template.name}: "
                f"{len(report.missing)} missing, {len(report.extra)} extra.",
                "`devenv env` adds the missing keys; remove the extra ones by hand.",
            )
        typer.echo(f"{report.env_file}: in step with {report.template.name}.")
        return
    result = ensure_env(project)
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if not result.written:
        typer.echo(f"{result.path}: up to date.")
        return
    generated = f" (generated secrets: {', '.join(result.generated)})" if result.generated else ""
    typer.echo(f"{result.path}: added {len(result.added)} keys{generated}.")


@app.command("render")
def render_command(
    ctx: typer.Context,
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="FILE", help="Write FILE (and the env files it uses) instead of printing."
    ),
    check: Path | None = typer.Option(
        None, "--check", metavar="FILE", help="Write nothing; exit 1 when FILE is stale."
    ),
) -> None:
    """Print the stack's compose definition (paths relative to the current directory)."""
    from devenv.errors import CheckFailed, UsageError
    from devenv.project import load_project
    from devenv.render import check_compose, render_compose, write_compose

    if output is not None and check is not None:
        raise UsageError("-o and --check cannot be combined.", "use -o to write a file or --check to verify one.")
    project = load_project(ctx.obj.project_dir)
    if check is not None:
        result = check_compose(project, check)
        if result.stale:
            typer.echo(result.diff, nl=False)
            raise CheckFailed(f"{check} is stale.", f"`devenv render -o {check}` brings it up to date.")
        typer.echo(f"{check}: up to date.")
        return
    if output is not None:
        written = write_compose(project, output)
        for warning in written.env.warnings if written.env else ():
            typer.echo(f"Warning: {warning}", err=True)
        typer.echo(f"{written.path}: {'written' if written.changed else 'unchanged'}.")
        return
    typer.echo(render_compose(project, base_dir=Path.cwd()), nl=False)


# -- helpers ------------------------------------------------------------------------------------------------------
def _project(ctx: typer.Context) -> Project:
    from devenv.project import load_project

    return load_project(ctx.obj.project_dir)


def _runtime(project: Project) -> DockerRuntime:
    from devenv.runtime import DockerRuntime

    return DockerRuntime(project.name, project.compose_file, project.compose_file.parent)


def _confirm(question: str, yes: bool, flag: str) -> None:
    """Ask on a terminal; without one, --yes is required."""
    from devenv.errors import Aborted, UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{flag} destroys data and needs a confirmation.", f"add --yes to confirm ({flag} --yes).")
    if not typer.confirm(question, default=False, err=True):
        raise Aborted("nothing was changed.", "answer y to confirm, or pass --yes.")


def _run_argv(argv: list[str]) -> None:
    """Run an interactive docker command with our stdio; exit with its code."""
    import subprocess

    raise typer.Exit(subprocess.run(argv, check=False).returncode)


# -- the stack ----------------------------------------------------------------------------------------------------
@app.command("up")
def up_command(
    ctx: typer.Context,
    services: list[str] = typer.Argument(
        None, help="Limit to these services (and what they need): postgres redis migrate server."
    ),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="Deadline per service, in seconds."),
    as_json: bool = typer.Option(False, "--json", help="NDJSON progress events and a final summary object."),
) -> None:
    """Start the stack and wait until every service really answers; migrate, and seed a new database."""
    from devenv.lock import project_lock
    from devenv.output import UpDisplay, print_up
    from devenv.stack import expand_services, up

    project = _project(ctx)
    selected = expand_services(services or [])
    with project_lock(project.state_dir), UpDisplay(selected, as_json=as_json) as display:
        result = up(project, _runtime(project), services or [], timeout=timeout, on_event=display.on_event)
    print_up(result, as_json=as_json)


@app.command("down")
def down_command(
    ctx: typer.Context,
    volumes: bool = typer.Option(False, "--volumes", help="Also remove the stack's data volumes (needs --yes)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --volumes without asking."),
) -> None:
    """Stop and remove the stack's containers and network; data volumes stay unless --volumes."""
    from devenv.lock import project_lock
    from devenv.stack import down

    project = _project(ctx)
    if volumes:
        _confirm(f"Remove the data volumes of {project.name!r} (all its data)?", yes, "--volumes")
    with project_lock(project.state_dir):
        result = down(project, _runtime(project), volumes=volumes)
    kept = f"; volumes kept: {', '.join(result.remaining_volumes)}" if result.remaining_volumes else ""
    typer.echo(f"{result.project}: stopped{' and volumes removed' if result.volumes_removed else ''}{kept}.")


@app.command("status")
def status_command(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="The health report as JSON.")
) -> None:
    """Health of the whole stack: exit 0 healthy, 1 degraded, 4 unhealthy or not running."""
    from devenv.output import print_status
    from devenv.status import stack_status

    project = _project(ctx)
    report = stack_status(project, _runtime(project))
    print_status(report, as_json=as_json)
    raise typer.Exit(int(report.exit_code))


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Only these services."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming."),
    tail: int | None = typer.Option(None, "--tail", "-n", min=0, help="Only the last N lines of each service."),
) -> None:
    """Show the stack's logs."""
    from devenv.shells import logs_argv
    from devenv.stack import expand_services

    project = _project(ctx)
    expand_services(services or [])  # validates the names
    _run_argv(logs_argv(_runtime(project), services or [], follow=follow, tail=tail))


@app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql_command(ctx: typer.Context) -> None:
    """psql in the postgres container, as the app user on the app database (extra arguments go to psql)."""
    from devenv.shells import psql_argv

    project = _project(ctx)
    _run_argv(psql_argv(project, _runtime(project), list(ctx.args)))


@app.command("redis-cli", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def redis_cli_command(ctx: typer.Context) -> None:
    """redis-cli in the redis container, on the app's database index (extra arguments go to redis-cli)."""
    from devenv.shells import redis_cli_argv

    project = _project(ctx)
    _run_argv(redis_cli_argv(project, _runtime(project), list(ctx.args)))


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_command(ctx: typer.Context, service: str = typer.Argument(..., help="postgres, redis or server.")) -> None:
    """Run a command in a running service: devenv exec SERVICE -- CMD..."""
    from devenv.errors import UsageError
    from devenv.shells import exec_argv
    from devenv.stack import expand_services

    if not ctx.args:
        raise UsageError("exec needs a command.", f"e.g. devenv exec {service} -- sh")
    expand_services([service])
    project = _project(ctx)
    _run_argv(exec_argv(_runtime(project), service, list(ctx.args)))


@app.command("migrate")
def migrate_command(
    ctx: typer.Context, status: bool = typer.Option(False, "--status", help="Show prisma migrate status instead.")
) -> None:
    """Run the migrate command (prisma migrate deploy) now, or show the migration status."""
    from devenv.shells import migrate

    project = _project(ctx)
    result = migrate(project, _runtime(project), status=status)
    typer.echo(result.output.rstrip())
    raise typer.Exit(result.exit_code)


@app.command("reset")
def reset_command(
    ctx: typer.Context,
    hard: bool = typer.Option(False, "--hard", help="Drop the stack's volumes and bring everything up again."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm without asking."),
    as_json: bool = typer.Option(False, "--json", help="The result as JSON."),
    timeout: float = typer.Option(60.0, "--timeout", min=1, help="Deadline per service for --hard, in seconds."),
) -> None:
    """Reset to a clean, migrated, seeded database (from a template copy); --hard recreates the volumes."""
    from devenv.lock import project_lock
    from devenv.snapshot import hard_reset, soft_reset_stack

    project = _project(ctx)
    what = "drop ALL data volumes of" if hard else "reset the database (and Redis db) of"
    _confirm(f"This will {what} {project.name!r}. Continue?", yes, "--hard" if hard else "reset")
    with project_lock(project.state_dir):
        if hard:
            result = hard_reset(project, _runtime(project), timeout=timeout)
        else:
            result = soft_reset_stack(project, _runtime(project), on_step=lambda step: typer.echo(step, err=True))
    if as_json:
        from dataclasses import asdict

        from devenv.output import emit_json

        emit_json(asdict(result))
        return
    action = {
        "template": "restored from its template",
        "remigrated": f"migrated and seeded anew ({result.reason}), new template taken",
        "hard": "recreated with its volumes",
    }
    typer.echo(
        f"{result.database}: {action[result.mode]}{' (its ready copy swapped in)' if result.from_spare else ''}"
        f"{', Redis db flushed' if result.redis_flushed else ''} in {result.seconds:.2f} s."
    )


# -- CI -----------------------------------------------------------------------------------------------------------
ci_app = typer.Typer(help="Isolated, parallel-safe stacks for CI, with Docker-chosen ports and exported URLs.")
app.add_typer(ci_app, name="ci")


@ci_app.command("up")
def ci_up_command(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Stack name (default: from the CI job, else random)."),
    env_file: Path | None = typer.Option(None, "--env-file", help="Write the connection settings to FILE (dotenv)."),
    as_json: bool = typer.Option(False, "--json", help="Print the connection settings as JSON."),
    timeout: float = typer.Option(120.0, "--timeout", min=1, help="Deadline per service, in seconds."),
) -> None:
    """Start an isolated stack, wait for it, smoke-test the server and export its connection settings."""
    from devenv.ci import ci_up, export

    stack = ci_up(_project(ctx), name, timeout=timeout)
    export(stack, env_file=env_file)
    if as_json:
        from devenv.output import emit_json

        emit_json(stack.variables())
    else:
        typer.echo(f"{stack.name}: healthy in {stack.seconds:.1f} s; server at {stack.server_url}")


@ci_app.command("down")
def ci_down_command(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="The stack's name (default: from the CI job)."),
) -> None:
    """Remove a CI stack: containers, network and volumes (success when already gone)."""
    from devenv.ci import ci_down

    removed = ci_down(_project(ctx), name)
    typer.echo(f"{removed}: removed.")


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_command(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Stack name (default: from the CI job, else random)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the stack up afterwards."),
    timeout: float = typer.Option(120.0, "--timeout", min=1, help="Deadline per service, in seconds."),
) -> None:
    """Start a CI stack, run CMD with its DATABASE_URL/REDIS_URL/SERVER_URL, always tear down: devenv run -- CMD..."""
    from devenv.ci import run_with_stack
    from devenv.errors import UsageError

    if not ctx.args:
        raise UsageError("run needs a command.", "e.g. devenv run -- npm test")
    raise typer.Exit(run_with_stack(_project(ctx), list(ctx.args), name=name, keep=keep, timeout=timeout))


@app.command("gc")
def gc_command(
    older_than: str = typer.Option("2h", "--older-than", help="Remove stacks older than this (30m, 2h, 1d)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
) -> None:
    """Remove devenv stacks (by label) older than a limit: the safety net for killed CI jobs."""
    from devenv.ci import gc, parse_duration

    stacks = gc(parse_duration(older_than), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for stack in stacks:
        typer.echo(f"{verb} {stack.name}: {stack.containers} containers, {stack.volumes} volumes")
    if not stacks:
        typer.echo(f"nothing older than {older_than}.")


@app.command("doctor")
def doctor_command(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="The findings as JSON.")
) -> None:
    """Check the engine, compose, socket, disk, ports, .env and images; exit 1 when a check fails."""
    from devenv.doctor import diagnose
    from devenv.output import print_doctor
    from devenv.project import load_project
    from devenv.runtime import engine_facts

    try:
        project: Project | DevenvError = load_project(ctx.obj.project_dir)
    except DevenvError as ex:
        project = ex
    runtime = _runtime(project) if not isinstance(project, DevenvError) else None
    report = diagnose(project, runtime, engine_facts)
    print_doctor(report, as_json=as_json)
    raise typer.Exit(1 if report.failed else 0)


def main() -> None:
    """Console entry point: the one place that turns errors into a message and an exit code."""
    from typer._click.exceptions import ClickException

    try:
        code = app(standalone_mode=False)
    except DevenvError as err:
        print(err.render(), file=sys.stderr)
        if err.details:
            print(err.details.rstrip(), file=sys.stderr)
        sys.exit(int(err.exit_code))
    except (KeyboardInterrupt, typer.Abort):
        print("Aborting.", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except ClickException as ex:  # usage errors: unknown option, missing argument, bad value
        ex.show()
        sys.exit(int(ExitCode.USAGE))
    # With standalone_mode=False, `raise typer.Exit(n)` comes back as a return value; typer turns Ctrl-C into 130.
    if code == ExitCode.INTERRUPTED:
        print("Aborting.", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
