"""The command line: each command parses its options, calls one core function and renders its result.

Built on argparse, as pipx's is, rather than typer: importing typer alone would cost more than `devenv --help` may
take, and every command would pay it (docs/benchmarks.md has the figures). Everything else is imported inside the
command that needs it. `main()` is the one place that turns errors into a message and an exit code
(docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from devenv import __version__
from devenv.core.errors import DevenvError, ExitCode, UsageError

if TYPE_CHECKING:
    from devenv.engine.runtime import Runtime
    from devenv.project.context import Context

Handler = Callable[[argparse.Namespace], int | None]
DESCRIPTION = "From a fresh clone to a migrated, healthy local stack (Postgres, Redis, your server) with one command."


class Parser(argparse.ArgumentParser):
    """argparse with devenv's errors: one line, a Hint, exit 2 (not argparse's usage block)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.completes: dict[str, str] = {}  # an argument's dest -> what completion offers for it (Arg.complete)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}.", f"see `{self.prog} --help`.")


# -- helpers ------------------------------------------------------------------------------------------------------
def _context(args: argparse.Namespace) -> Context:
    """The command's context: project, parsed .env and template, settings, runtime (devenv.project.context)."""
    from devenv.project.context import load

    return load(args.project_dir)


@contextmanager
def _locked(args: argparse.Namespace, ask: Callable[[str], str] | None = None, flag: str = "") -> Iterator[Context]:
    """The command's context, loaded while holding the project's lock: .env is read under it, so a second devenv
    waiting for the lock sees what the first one wrote. With ASK, the question ASK(project name) is confirmed first
    (see `_confirm`), before the lock is taken."""
    from devenv.core.lock import project_lock
    from devenv.project.context import open_project
    from devenv.project.discovery import load_project

    project = load_project(args.project_dir)
    if ask is not None:
        _confirm(ask(project.name), args.yes, flag)
    with project_lock(project.state_dir):
        yield open_project(project)


def _confirm(question: str, yes: bool, flag: str) -> None:
    """Ask on a terminal; without one, --yes is required."""
    from devenv.core.errors import Aborted

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{flag} destroys data and needs a confirmation.", f"add --yes to confirm ({flag} --yes).")
    from devenv.cli.output import ask

    if not ask(f"{question} [y/N]: "):
        raise Aborted("nothing was changed.", "answer y to confirm, or pass --yes.")


def _command_args(args: argparse.Namespace, what: str, example: str) -> list[str]:
    """The command passed through after devenv's own arguments (see `split_passthrough`)."""
    rest = list(args.command)
    if not rest:
        raise UsageError(f"{what} needs a command.", f"e.g. {example}")
    return rest


def _interactive(argv: list[str], runtime: Runtime) -> int:
    """Run an interactive docker command on the user's terminal (in compose's environment: the stack's labels,
    the ssh shim); its exit code is devenv's."""
    from devenv.core import proc

    return proc.interactive(argv, env=runtime.compose_env())


# -- env / render ---------------------------------------------------------------------------------------------------
def env_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_drift, print_env
    from devenv.core.errors import CheckFailed
    from devenv.project.envfile import check_env, ensure_env, remember

    c = _context(args)
    if args.check:
        report = check_env(c.project, c.files, c.host_ports())
        print_drift(report)
        if report.drift:
            raise CheckFailed(
                f"{report.env_file} is out of step with {report.template.name}: "
                f"{len(report.missing)} missing, {len(report.extra)} extra, {len(report.ports)} on other ports.",
                "`devenv env` adds the missing keys; remove the extra ones and fix the ports by hand.",
            )
        return
    result = ensure_env(c.project, c.environ, files=c.files, redis=c.stack.redis, host=c.runtime.host_address())
    remember(c.project, result)
    print_env(result)


def render_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo, print_env, write
    from devenv.core.errors import CheckFailed
    from devenv.project.envfile import ensure_env, remember
    from devenv.stack.render import check_compose, render_compose, write_compose

    if args.output is not None and args.check is not None:
        raise UsageError("-o and --check cannot be combined.", "use -o to write a file or --check to verify one.")
    c = _context(args)
    if args.check is not None:
        result = check_compose(c, args.check)
        if result.stale:
            write(result.diff)
            raise CheckFailed(f"{args.check} is stale.", f"`devenv render -o {args.check}` brings it up to date.")
        echo(f"{args.check}: up to date.")
    elif args.output is not None:
        env = ensure_env(c.project, c.environ, files=c.files, redis=c.stack.redis, host=c.runtime.host_address())
        written = write_compose(c.with_files(env.files), args.output)
        remember(c.project, env)
        if env.written:
            print_env(env)
        echo(f"{written.path}: {'written' if written.changed else 'unchanged'}.")
        if written.env_files:
            folder = written.env_files[0].parent
            echo(
                f"its env files ({', '.join(p.name for p in written.env_files)}) are in {folder} (0600, outside the "
                f"project); plain docker compose needs DEVENV_SECRETS={folder}."
            )
    else:
        write(render_compose(c, base_dir=Path.cwd()))


def init_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_init
    from devenv.commands.init import init

    print_init(init(_context(args), write=not args.print))


# -- the stack ----------------------------------------------------------------------------------------------------
def up_command(args: argparse.Namespace) -> int | None:
    from devenv.cli.output import UpDisplay, print_up
    from devenv.commands.dev import watching
    from devenv.commands.lifecycle import up
    from devenv.project.services import expand_services

    with _locked(args) as c:
        c = watching(c) if args.watch else c
        with UpDisplay(expand_services(args.services, c.stack), as_json=args.json) as display:
            result = up(c, args.services, timeout=args.timeout, on_event=display.on_event)
    print_up(result, as_json=args.json, said=display.said)
    return _watch(c, args.timeout) if args.watch else None


def down_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_down
    from devenv.commands.lifecycle import down

    if args.gone:
        return _down_gone(args)
    if args.running:
        raise UsageError("--running only goes with --gone.", "devenv down --gone --running --yes")
    ask = (lambda name: f"Remove the data volumes of {name!r} (all its data)?") if args.volumes else None
    with _locked(args, ask, "--volumes") as c:
        print_down(down(c, volumes=args.volumes))


def dev_command(args: argparse.Namespace) -> int:
    from devenv.cli.output import print_dev_ready, print_dev_stopped
    from devenv.commands.dev import dev

    try:
        code = dev(_context(args), timeout=args.timeout, on_ready=print_dev_ready)
    except KeyboardInterrupt as ex:  # a signal sent to devenv itself (a CI runner, `kill -INT`): passed on, then here
        signum = ex.args[0] if ex.args and isinstance(ex.args[0], int) else 2
        code = 128 + signum
    print_dev_stopped(code)
    return code


def watch_command(args: argparse.Namespace) -> int | None:
    args.watch, args.services, args.json = True, [], False  # `devenv watch` is `devenv up --watch`
    return up_command(args)


def _watch(c: Context, timeout: float) -> int:
    from devenv.cli.output import echo, print_watch_event
    from devenv.commands.dev import watch

    try:
        return watch(c, timeout=timeout, on_event=print_watch_event)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends: said as such, with the exit code of an interrupt
        echo("watch stopped; the stack is still up (`devenv down` stops it).", err=True)
        return int(ExitCode.INTERRUPTED)


def _down_gone(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo, print_stacks
    from devenv.project.runtimes import runtime_for
    from devenv.stack.checkouts import gone_stacks, remove_gone

    runtime = runtime_for()
    every = gone_stacks(runtime, running=True)
    stacks = [s for s in every if args.running or not s.running]
    left = [s for s in every if s not in stacks]
    for stack in left:
        echo(
            f"{stack.name}: left alone, it is running (its checkout {stack.checkout} is gone; "
            "`devenv down --gone --running` removes running ones too).",
            err=True,
        )
    if not stacks:
        echo("no stopped stack of a checkout of this machine that is gone.")
        return
    print_stacks(stacks, as_json=False)
    names = ", ".join(s.name for s in stacks)
    _confirm(f"Remove {names} with their volumes (their checkouts no longer exist)?", args.yes, "down --gone")
    for stack in remove_gone(runtime, stacks):
        echo(f"{stack.name}: removed (its checkout {stack.checkout} is gone).")


def ls_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_stacks
    from devenv.project.runtimes import runtime_for
    from devenv.stack.checkouts import list_stacks

    print_stacks(list_stacks(runtime_for()), as_json=args.json)


def status_command(args: argparse.Namespace) -> int:
    from devenv.cli.output import print_status
    from devenv.commands.status import stack_status

    report = stack_status(_context(args))
    print_status(report, as_json=args.json)
    return int(report.exit_code)


def logs_command(args: argparse.Namespace) -> int:
    from devenv.commands.shells import logs_argv
    from devenv.project.services import expand_services

    c = _context(args)
    if c.stack.server_on_host and "server" in args.services:
        raise UsageError(
            "the server runs on the host (`devenv dev`): its output is in the terminal that runs it.",
            "`devenv logs` shows the stack's services (postgres, redis).",
        )
    expand_services(args.services, c.stack)  # validates the names
    if sys.stdout.isatty():  # compose's own colours and layout, on the terminal
        return _interactive(logs_argv(c.runtime, args.services, follow=args.follow, tail=args.tail), c.runtime)
    from devenv.cli.output import echo

    return c.runtime.stream_logs(args.services, echo, follow=args.follow, tail=args.tail)


def psql_command(args: argparse.Namespace) -> int:
    from devenv.commands.shells import psql_argv

    c = _context(args)
    return _interactive(psql_argv(c, list(args.command)), c.runtime)


def redis_cli_command(args: argparse.Namespace) -> int:
    from devenv.commands.shells import redis_cli_argv

    c = _context(args)
    return _interactive(redis_cli_argv(c, list(args.command)), c.runtime)


def exec_command(args: argparse.Namespace) -> int:
    from devenv.commands.shells import exec_argv
    from devenv.project.services import expand_services

    cmd = _command_args(args, "exec", f"devenv exec {args.service} -- sh")
    c = _context(args)
    expand_services([args.service], c.stack)
    return _interactive(exec_argv(c.runtime, args.service, cmd), c.runtime)


def migrate_command(args: argparse.Namespace) -> int:
    from devenv.cli.output import print_migrate
    from devenv.stack.migrate import migrate_command as run_migrate

    result = run_migrate(_context(args), status=args.status)
    print_migrate(result)
    return result.exit_code


def reset_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo, print_reset

    what = "drop ALL data volumes of" if args.hard else "reset the database (and Redis db) of"
    with _locked(args, lambda name: f"This will {what} {name!r}. Continue?", "--hard" if args.hard else "reset") as c:
        if args.hard:
            from devenv.commands.lifecycle import hard_reset

            result = hard_reset(c, timeout=args.timeout)
        else:
            from devenv.commands.branches import (
                reset_on_branch,  # the soft reset; per-branch databases park the old one
            )

            result = reset_on_branch(c, on_step=lambda step: echo(step, err=True))
    print_reset(result, as_json=args.json)


# -- databases (devenv db) -----------------------------------------------------------------------------------------
def db_snapshot_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_db
    from devenv.commands.snapshots import take

    with _locked(args) as c:
        print_db(take(c, args.name), as_json=args.json)


def db_restore_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo, print_db
    from devenv.commands.snapshots import restore

    ask = lambda name: f"Replace the database (and flush the Redis db) of {name!r} with snapshot {args.name!r}?"  # noqa: E731
    with _locked(args, ask, "db restore") as c:
        print_db(restore(c, args.name, on_step=lambda step: echo(step, err=True)), as_json=args.json)


def db_list_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_db_list
    from devenv.commands.snapshots import listing

    print_db_list(listing(_context(args)), as_json=args.json)


def db_rm_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_db
    from devenv.commands.snapshots import remove

    with _locked(args, lambda name: f"Remove snapshot {args.name!r} of {name!r}?", "db rm") as c:
        print_db(remove(c, args.name), as_json=args.json)


def db_dump_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import ByteProgress, print_dump
    from devenv.commands.dump import dump

    with _locked(args) as c, ByteProgress("dumping") as progress:
        result = dump(c, args.output, on_bytes=progress)
    print_dump(result, as_json=args.json)


def db_load_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import ByteProgress, print_db
    from devenv.commands.dump import check_dump_file, load

    check_dump_file(args.file)  # before asking
    ask = lambda name: f"Replace the database (and flush the Redis db) of {name!r} with {args.file}?"  # noqa: E731
    with _locked(args, ask, "db load") as c, ByteProgress("loading") as progress:
        result = load(c, args.file, on_bytes=progress)
    print_db(result, as_json=args.json)


# -- CI -----------------------------------------------------------------------------------------------------------
def ci_up_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_ci_up, print_masks
    from devenv.commands.ci import ci_up, export, mask_for_github

    stack = ci_up(_context(args), args.name, timeout=args.timeout)
    print_masks(mask_for_github(stack.variables()))
    export(stack, env_file=args.env_file)
    print_ci_up(stack, as_json=args.json)


def ci_down_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo
    from devenv.commands.ci import ci_down

    c = _context(args)
    echo(f"{ci_down(c.runtime, args.name, project=c.project)}: removed.")


def run_command(args: argparse.Namespace) -> int:
    from devenv.cli.output import print_masks
    from devenv.commands.ci import mask_for_github, run_with_stack

    cmd = _command_args(args, "run", "devenv run -- npm test")
    if args.workers:
        from devenv.commands.clones import check_count

        check_count(args.workers)
    return run_with_stack(
        _context(args),
        cmd,
        name=args.name,
        keep=args.keep,
        timeout=args.timeout,
        on_ready=lambda stack: print_masks(mask_for_github(stack.variables())),
        workers=args.workers,
    )


def gc_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_gc
    from devenv.commands.ci import gc, parse_duration
    from devenv.project.runtimes import runtime_for

    stacks = gc(runtime_for(), parse_duration(args.older_than), dry_run=args.dry_run)
    print_gc(stacks, dry_run=args.dry_run, older_than=args.older_than)


def doctor_command(args: argparse.Namespace) -> int:
    from devenv.cli.output import print_doctor
    from devenv.commands.doctor import diagnose
    from devenv.project.discovery import Project, load_project
    from devenv.project.runtimes import runtime_for

    try:
        project: Project | DevenvError = load_project(args.project_dir)
    except DevenvError as ex:
        project = ex
    runtime = runtime_for(project if isinstance(project, Project) else None)
    report = diagnose(project, runtime, runtime.engine_facts)
    print_doctor(report, as_json=args.json)
    return 1 if report.failed else 0


# -- databases that follow the work (per-branch databases, clones per test worker) ----------------------------------
def db_clones_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_clones
    from devenv.commands.clones import check_count, make_clones

    check_count(args.count)
    with _locked(args) as c:
        result = make_clones(c, args.count)
    if args.env_file is not None:
        from devenv.commands.ci import write_env_file

        write_env_file(args.env_file, result.variables())
    print_clones(result, as_json=args.json, env_file=args.env_file)


def db_branches_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_branches
    from devenv.commands.branches import list_branches

    print_branches(list_branches(_context(args)), as_json=args.json)


def db_switch_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import print_switch
    from devenv.commands.branches import switch

    with _locked(args) as c:
        result = switch(c)
    print_switch(result, quiet=args.quiet)


def hooks_install_command(args: argparse.Namespace) -> None:
    from devenv.cli.output import echo
    from devenv.commands.branches import install_hook

    echo(install_hook(_context(args).project))


def completion_command(args: argparse.Namespace) -> None:
    from devenv.cli.completion import script
    from devenv.cli.output import write

    write(script(args.shell))


# -- the command table --------------------------------------------------------------------------------------------
class Arg(NamedTuple):  # a NamedTuple, not a dataclass: importing dataclasses is a cost `--help` need not pay
    """One argument of a command: its flags (or its name, for a positional) and argparse's options for it."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]
    complete: str = ""  # what shell completion offers for it from the project: "services" or "snapshots"


def arg(*flags: str, complete: str = "", **options: Any) -> Arg:
    return Arg(flags, options, complete)


def _json(what: str) -> Arg:
    return arg("--json", action="store_true", help=what)


def _timeout(default: float, what: str = "Deadline per service") -> Arg:
    return arg("--timeout", type=_seconds, default=default, metavar="S", help=f"{what}, in seconds.")


def _seconds(text: str) -> float:
    value = float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1 second")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


YES = arg("-y", "--yes", action="store_true", help="Confirm without asking.")
RESULT_JSON = _json("The result as JSON.")
STACK_NAME = arg("--name", help="Stack name (default: from the CI job, else random).")


class Command(NamedTuple):
    """One row of the command table: `devenv PATH`, its handler (None: a group, which prints its help), the summary
    `--help` shows, its arguments and the text under its help."""

    path: str
    handler: Handler | None
    summary: str
    args: tuple[Arg, ...] = ()
    epilog: str | None = None


# One row a command, in the order `devenv --help` lists them. Kept in this layout by hand (ruff's would put every
# field of every row on a line of its own, and the table would no longer read as one).
COMMANDS: tuple[Command, ...] = (
    Command("env", env_command, "Create or complete .env from the template (values kept, secrets made).", (
        arg("--check", action="store_true",
            help="Write nothing; exit 1 when .env lacks template keys or has stale ones."),
    )),
    Command("init", init_command, "Look at the project and write a commented devenv.toml (never overwrites).", (
        arg("--print", action="store_true", help="Print the proposal instead of writing devenv.toml."),
    )),
    Command("render", render_command, "Print the stack's compose definition.", (
        arg("-o", "--output", type=Path, metavar="FILE", help="Write FILE (and its env files) instead."),
        arg("--check", type=Path, metavar="FILE", help="Write nothing; exit 1 when FILE is stale."),
    )),
    Command("up", up_command, "Start the stack, wait until every service answers, migrate, seed once.", (
        arg("services", nargs="*", metavar="SERVICE", help="Only these (and what they need).", complete="services"),
        _timeout(60.0),
        _json("NDJSON progress events and a final summary object."),
        arg("--watch", action="store_true", help="Then reload the server on changes (see `devenv watch`)."),
    )),
    Command("dev", dev_command, "Run the server's dev script on the host against the stack (Ctrl-C stops it).", (
        _timeout(120.0, "Deadline for the server to answer"),
    )),
    Command("watch", watch_command, "Up, then reload the server container on changes (docker compose watch).", (
        _timeout(120.0, "Deadline for the server to answer after each change"),
    )),
    Command("down", down_command, "Stop and remove the stack's containers; data volumes stay.", (
        arg("--volumes", action="store_true", help="Also remove the stack's data volumes (needs --yes)."),
        arg("-y", "--yes", action="store_true", help="Confirm --volumes or --gone without asking."),
        arg("--gone", action="store_true",
            help="Remove the stopped stacks (and volumes) of this machine's checkouts that no longer exist."),
        arg("--running", action="store_true", help="With --gone: running stacks of gone checkouts too."),
    )),
    Command("ls", ls_command, "Every devenv stack on this engine: machine, checkout, state, ports, volume size, age.", (
        _json("The stacks as JSON."),
    )),
    Command("status", status_command, "Health of the stack: exit 0 healthy, 1 degraded, 4 down.", (
        _json("The health report as JSON."),
    )),
    Command("logs", logs_command, "Show the stack's logs.", (
        arg("services", nargs="*", metavar="SERVICE", help="Only these services.", complete="services"),
        arg("-f", "--follow", action="store_true", help="Keep streaming."),
        arg("-n", "--tail", type=_count, metavar="N", help="Only the last N lines of each service."),
    )),
    Command("psql", psql_command, "psql in the postgres container, as the app user on the app database.",
            epilog="Every argument after `psql` goes to psql, e.g. devenv psql -c 'select 1'."),
    Command("redis-cli", redis_cli_command, "redis-cli in the redis container, on the app's db index.",
            epilog="Every argument after `redis-cli` goes to redis-cli, e.g. devenv redis-cli keys '*'."),
    Command("exec", exec_command, "Run a command in a running service: devenv exec SERVICE -- CMD...", (
        arg("service", metavar="SERVICE", help="postgres, redis or server.", complete="services"),
    ), epilog="Every argument after SERVICE (and an optional --) is the command."),
    Command("migrate", migrate_command, "Run the migrate command now (prisma migrate deploy).", (
        arg("--status", action="store_true", help="Show prisma migrate status instead."),
    )),
    Command("reset", reset_command, "Reset to a clean, migrated, seeded database from its template.", (
        arg("--hard", action="store_true", help="Drop the stack's volumes and bring everything up again."),
        YES,
        RESULT_JSON,
        _timeout(60.0, "Deadline per service for --hard"),
    )),
    Command("ci", None, "Isolated, parallel-safe stacks for CI, with exported URLs."),
    Command("ci up", ci_up_command, "Start an isolated stack, smoke-test it, export its settings.", (
        STACK_NAME,
        arg("--env-file", type=Path, metavar="FILE", help="Write the connection settings to FILE (dotenv)."),
        _json("Print the connection settings as JSON."),
        _timeout(120.0),
    )),
    Command("ci down", ci_down_command, "Remove a CI stack (success when already gone).", (
        arg("--name", help="The stack's name (default: from the CI job)."),
    )),
    Command("run", run_command, "Start a CI stack, run CMD with its URLs, always tear down.", (
        STACK_NAME,
        arg("--keep", action="store_true", help="Leave the stack up afterwards."),
        arg("--workers", type=_count, default=0, metavar="N", help="A clone of the template per test worker: "
            "DATABASE_URL_1..N and DEVENV_WORKERS=N (dropped afterwards)."),
        _timeout(120.0),
    ), epilog="The command follows the options, best after --: devenv run -- npm test."),
    Command("gc", gc_command, "Remove devenv CI stacks older than a limit (killed CI jobs).", (
        arg("--older-than", default="2h", metavar="AGE", help="Remove stacks older than this (30m, 2h, 1d)."),
        arg("--dry-run", action="store_true", help="Only list what would be removed."),
    )),
    Command("db", None, "The stack's databases: snapshots, the template cache, dumps, per-branch databases, clones per "
            "test worker."),
    Command("db clones", db_clones_command, "Make N copies of the template (<db>_w1..N) and print their URLs.", (
        arg("count", type=_count, metavar="N", help="How many (0 drops devenv's clones)."),
        arg("--env-file", type=Path, metavar="FILE", help="Write DATABASE_URL_1..N and DEVENV_WORKERS to FILE."),
        _json("The clones as JSON."),
    )),
    Command("db branches", db_branches_command, "The databases of git branches ([db] per_branch).", (
        _json("The branches' databases as JSON."),
    )),
    Command("db switch", db_switch_command, "Park the app database and bring in the checked-out branch's.", (
        arg("--quiet", action="store_true", help="Say nothing when nothing was switched (the git hook)."),
    )),
    Command("db snapshot", db_snapshot_command, "Copy the app database into snapshot NAME (default: the time).", (
        arg("name", nargs="?", metavar="NAME", help="Letters, digits, '.', '_', '-'."),
        RESULT_JSON,
    )),
    Command("db restore", db_restore_command, "Replace the app database with snapshot NAME; flush Redis.", (
        arg("name", metavar="NAME", complete="snapshots"),
        YES,
        RESULT_JSON,
    )),
    Command("db list", db_list_command, "Snapshots and cached templates: size, age, migrations key.", (
        _json("The listing as JSON."),
    )),
    Command("db rm", db_rm_command, "Remove snapshot NAME.", (
        arg("name", metavar="NAME", complete="snapshots"),
        YES,
        RESULT_JSON,
    )),
    Command("db dump", db_dump_command, "pg_dump -Fc of the app database into a file on the host.", (
        arg("-o", "--output", type=Path, metavar="FILE", help="Default: .devenv/dumps/<db>-<time>.dump."),
        RESULT_JSON,
    )),
    Command("db load", db_load_command, "Restore FILE into a new database and swap it in for the app's.", (
        arg("file", type=Path, metavar="FILE", help="A `devenv db dump` (pg_dump -Fc) file."),
        YES,
        RESULT_JSON,
    )),
    Command("hooks", None, "Git hooks devenv offers."),
    Command("hooks install", hooks_install_command, "Add a post-checkout hook: the branch's database at checkout."),
    Command("doctor", doctor_command, "Check engine, compose, socket, disk, ports, .env, images.", (
        _json("The findings as JSON."),
    )),
    Command("completion", completion_command, "Print the shell completion script (bash, zsh or fish).", (
        arg("shell", choices=("bash", "zsh", "fish"), metavar="SHELL", help="bash, zsh or fish."),
    ), epilog="bash: source <(devenv completion bash) in ~/.bashrc; zsh: source <(devenv completion zsh) after "
              "compinit in ~/.zshrc; fish: devenv completion fish > ~/.config/fish/completions/devenv.fish"),
)  # fmt: skip


# -- the parser ---------------------------------------------------------------------------------------------------
def build_parser() -> Parser:
    """devenv's whole command line: the global options, then a parser for each row of COMMANDS."""
    parser = Parser(prog="devenv", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "-C",
        "--project-dir",
        type=Path,
        metavar="DIR",
        help="Run as if started in DIR (the project root or any folder inside it).",
    )
    parser.add_argument("--version", action="version", version=f"devenv {__version__}")
    parsers: dict[str, Parser] = {"": parser}
    groups: dict[str, Any] = {}  # a parser's path -> its subparsers
    for command in COMMANDS:
        parent, _, name = command.path.rpartition(" ")
        if parent not in groups:
            groups[parent] = parsers[parent].add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
        parsers[command.path] = _add(groups[parent], name, command)
    return parser


def _add(sub: Any, name: str, command: Command) -> Parser:
    parser: Parser = sub.add_parser(
        name,
        help=command.summary,
        description=command.summary,
        epilog=command.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for a in command.args:
        action = parser.add_argument(*a.flags, **a.options)
        if a.complete:
            parser.completes[action.dest] = a.complete
    parser.set_defaults(handler=command.handler or _group(parser))
    return parser


def _group(parser: argparse.ArgumentParser) -> Handler:
    """A group's handler (`devenv db`): its help, and the exit code of a usage error."""
    return lambda args: _help(parser)


COMPLETE = "__complete"  # the hidden command of the completion scripts (devenv.cli.completion)
GLOBAL_VALUE_OPTIONS = {"-C", "--project-dir"}
RUN_VALUE_OPTIONS = {"--name", "--timeout", "--workers"}


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ARGV into what devenv parses and the command it passes on (psql, redis-cli, exec, run).

    psql and redis-cli pass on everything after their name, exec everything after SERVICE, run everything after
    its own options; a leading `--` is dropped. argparse alone cannot do this (`devenv psql -c ...` would be an
    unknown option to it).
    """
    argv = list(argv)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # devenv's global options
        i += 2 if argv[i] in GLOBAL_VALUE_OPTIONS else 1
    if i >= len(argv):
        return argv, []
    command, start = argv[i], i + 1
    if command in {"psql", "redis-cli"}:
        cut = start
    elif command == "exec":
        cut = start + 1
    elif command == "run":
        cut = start
        while cut < len(argv) and argv[cut].startswith("-") and argv[cut] != "--":
            cut += 2 if argv[cut] in RUN_VALUE_OPTIONS else 1
    else:
        return argv, []
    rest = argv[cut:]
    return argv[:cut], rest[1:] if rest[:1] == ["--"] else rest


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return int(ExitCode.USAGE)


def _interruptible() -> None:
    """Make SIGINT raise KeyboardInterrupt even when devenv was started with it ignored.

    A shell without job control (a script's `cmd &`, nohup, some CI runners and agents) starts its background
    commands with SIGINT ignored, and Python keeps it so: `kill -INT` (a runner cancelling the job, a test) was
    then lost, and `up` ran to its end, `watch` forever. devenv's commands stop cleanly on it, as `run` and `dev`
    already did (devenv.core.proc.supervised installs its own handler), so every command takes SIGINT.
    """
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: the one place that turns errors into a message and an exit code."""
    import os

    _interruptible()
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == [COMPLETE]:
        _complete(words[1:])
    if os.environ.get("DEVENV_DEBUG"):  # every command devenv runs, on stderr (devenv.core.proc logs them)
        import logging

        logging.basicConfig(level=logging.DEBUG, format="devenv: %(message)s", stream=sys.stderr)
    parser = build_parser()
    try:
        own, passed = split_passthrough(words)
        args = parser.parse_args(own)
        args.command = passed
        handler: Handler | None = getattr(args, "handler", None)
        code = _help(parser) if handler is None else handler(args) or 0
    except DevenvError as err:
        from devenv.cli.output import print_error

        print_error(err)
        sys.exit(int(err.exit_code))
    except KeyboardInterrupt:
        print("Aborting.", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # another pipe (a child's, a socket): a bug to show, not a reader that went away
        sys.exit(int(ExitCode.PIPE_CLOSED))
    sys.exit(code)


def _complete(words: list[str]) -> NoReturn:
    """`devenv __complete WORD…`, what the completion scripts run on TAB (WORDs: the line after `devenv`, the last
    one being completed): the candidates, one a line. It never fails loudly: the user is in the middle of a line."""
    try:
        own, _ = split_passthrough(words)
        if len(own) == len(words):  # else the word goes to psql, redis-cli, exec's or run's command
            from devenv.cli.completion import candidates
            from devenv.cli.output import write

            write("".join(f"{line}\n" for line in candidates(build_parser(), words)))
    except (Exception, KeyboardInterrupt):  # no project, no engine, a closed pipe: no candidates
        pass
    sys.exit(0)


def _stdout_closed() -> bool:
    """Whether stdout's reader went away (`devenv doctor | head -1`); if so, stdout now points at /dev/null.

    The recipe of Python's signal docs: what is still buffered would fail again when Python flushes at exit and
    print "Exception ignored ... BrokenPipeError", so stdout's descriptor is pointed at /dev/null.
    """
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poll.poll(0)):  # POLLERR: the read end is closed
            return False
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to redirect
        return False
    return True
