"""The CLI's edge: every line devenv prints, human or JSON. Core modules return results; this module renders them.

Human output is plain text off a terminal (CI logs, pipes: no escape sequences, tables never folded) and coloured
on one unless NO_COLOR is set (https://no-color.org). `up` on a terminal shows a live line per service on stderr.
Tables are drawn here rather than with rich: importing rich costs more than `devenv status` may spend in all.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the results' modules pull in the core; the CLI imports this module for every command
    from devenv.commands.branches import BranchList, SwitchResult
    from devenv.commands.ci import CiStack, StackAge
    from devenv.commands.clones import ClonesResult
    from devenv.commands.dev import WatchEvent
    from devenv.commands.doctor import DoctorReport
    from devenv.commands.dump import DumpResult
    from devenv.commands.init import InitResult
    from devenv.commands.lifecycle import DownResult, Event, UpResult
    from devenv.commands.reset import ResetResult
    from devenv.commands.snapshots import DbListing, DbResult
    from devenv.commands.status import StatusReport
    from devenv.core.errors import DevenvError
    from devenv.project.envfile import DriftReport, EnvResult
    from devenv.stack.checkouts import StackInfo
    from devenv.stack.migrate import MigrateResult

CODES = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2", "bold red": "1;31"}
PHASE_STYLES = {
    "starting": "yellow",
    "building": "yellow",
    "built": "green",
    "waiting": "yellow",
    "migrating": "yellow",
    "ready": "green",
    "migrated": "green",
    "up to date": "green",
    "seeding": "yellow",
    "seeded": "green",
    "unchanged": "green",
    "failed": "bold red",
}
DONE_PHASES = {"ready", "migrated", "seeded", "unchanged", "failed"}


def colour_on(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (to anything)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def paint(text: str, style: str, on: bool) -> str:
    """TEXT in STYLE when ON, else as it is."""
    return f"\x1b[{CODES[style]}m{text}\x1b[0m" if on and style in CODES else text


def emit_json(obj: dict[str, Any]) -> None:
    """One NDJSON line on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def echo(text: str = "", *, err: bool = False) -> None:
    """One line on stdout (or stderr)."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def write(text: str) -> None:
    """TEXT on stdout as it is (a rendered file, a diff)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def ask(question: str) -> bool:
    """QUESTION on stderr; True when the answer on stdin starts with y."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower().startswith("y")


def warn(text: str) -> None:
    """`Warning: ...` on stderr."""
    echo(f"Warning: {text}", err=True)


def print_error(err: DevenvError) -> None:
    """The one-line error with its hint, then its details (a log tail) below it."""
    echo(err.render(), err=True)
    if err.details:
        echo(err.details.rstrip(), err=True)


def table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    styles: dict[int, str] | None = None,
    on: bool = False,
) -> str:
    """A plain table: a title line, a header, and one line per row; cells are never cut or folded."""
    body = [list(r) for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in body)]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str], style: str | None = None) -> str:
        out = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()
        return paint(out, style, on) if style else out

    lines = [title, line(columns, "bold"), line(["-" * w for w in widths])]
    for index, row in enumerate(body):
        lines.append(line(row, (styles or {}).get(index)))
    return "\n".join(lines)


class UpDisplay:
    """A live status line per service while `up` waits (on a terminal, on stderr), or NDJSON events with --json.

    Off a terminal each service gets one line when it is done, so a CI log shows progress without escape codes.
    """

    def __init__(self, services: list[str], *, as_json: bool, stream: IO[str] | None = None) -> None:
        from devenv.commands.lifecycle import Event

        self.as_json = as_json
        self.stream = stream or sys.stderr
        self.rows: dict[str, Event] = {s: Event(s, "starting", 0.0) for s in services}
        self.live = not as_json and self.stream.isatty()
        self.colour = colour_on(self.stream)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.said: list[str] = []  # notes and warnings already printed (print_up does not repeat them)
        self._held: list[Event] = []  # on a terminal: printed when the live lines are gone

    def __enter__(self) -> UpDisplay:
        if self.live:
            self._draw()
            self._ticker = threading.Thread(target=self._tick, name="display", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.live:
            with self._lock:  # transient: the summary (or the error) replaces the live lines
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J" if self._drawn else "")
                self.stream.flush()
            if exc is not None:  # no summary follows: what `up` decided is said now
                for event in self._held:
                    self._say(event)

    def _tick(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        out = [f"\x1b[{self._drawn}F"] if self._drawn else []
        for service, event in self.rows.items():
            seconds = event.elapsed if event.phase in DONE_PHASES else time.monotonic() - self._t0
            phase = paint(event.phase, PHASE_STYLES.get(event.phase, ""), self.colour)
            detail = f"  {event.detail[:60]}" if event.phase == "building" and event.detail else ""
            line = f"  {paint(f'{service:<9}', 'bold', self.colour)} {phase}  {seconds:5.1f} s{detail}"
            out.append(f"\x1b[2K{line}\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(self.rows)

    def _say(self, event: Event) -> None:
        label = "Note" if event.phase == "note" else "Warning"
        self.stream.write(f"{label}: {event.detail}\n")
        self.stream.flush()
        self.said.append(event.detail)

    def on_event(self, event: Event) -> None:
        with self._lock:
            if self.as_json:
                emit_json({"event": "progress", **asdict(event), "elapsed": round(event.elapsed, 3)})
                return
            if event.phase in {"note", "warning"}:
                if self.live:
                    self._held.append(event)
                else:
                    self._say(event)
                return
            self.rows[event.service] = event
            if self.live:
                self._draw()
            elif event.phase in {"ready", "migrated", "seeded", "failed", "built", "migrating"}:
                detail = f": {event.detail}" if event.phase == "built" and event.detail else ""
                self.stream.write(f"  {event.service:<9} {event.phase} ({event.elapsed:.2f} s){detail}\n")
                self.stream.flush()
            elif event.phase == "building" and event.detail:  # a build step, one line each in a log
                self.stream.write(f"  {event.service:<9} building {event.detail}\n")
                self.stream.flush()


def print_up(result: UpResult, *, as_json: bool, said: Sequence[str] = ()) -> None:
    """The summary after `up`: service, state, host URL (passwords masked), seconds to ready; then the notes and
    warnings not SAID already (during `up`, off a terminal)."""
    for warning in result.env_warnings:
        warn(warning)
    if as_json:
        emit_json({"event": "summary", **asdict(result)})
        return
    on = colour_on(sys.stdout)
    rows = [
        (r.service, r.state, r.url, f"{r.seconds:.2f} s" if r.seconds is not None else "-") for r in result.services
    ]
    echo(
        table(
            f"devenv: {result.project} is up ({result.elapsed:.2f} s)",
            ("service", "state", "url", "ready after"),
            rows,
            on=on,
        )
    )
    if not result.compose_work:
        echo("Nothing changed: no compose work was needed.")
    if result.env_added:
        generated = f" (generated secrets: {', '.join(result.env_generated)})" if result.env_generated else ""
        echo(f".env: added {', '.join(result.env_added)}{generated}")
    for note in result.notes:
        if note not in said:
            echo(f"Note: {note}")
    for warning in result.warnings:
        if warning not in said:
            warn(warning)


def print_status(report: StatusReport, *, as_json: bool) -> None:
    """The status table (or the review's JSON shape)."""
    if as_json:
        emit_json(report.as_dict())
        return
    on = colour_on(sys.stdout)
    colour = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}[report.status]
    rows = []
    for name, check in report.checks.items():
        ms = f"{check.responseTime:.0f} ms" if check.responseTime is not None else "-"
        rows.append((name, check.status, check.container, "yes" if check.ready else "no", ms, check.error or ""))
    styles = {i: "green" if r[1] == "up" else "yellow" if r[1] == "degraded" else "red" for i, r in enumerate(rows)}
    title = f"{report.project}: {paint(report.status, colour, on)}"
    echo(table(title, ("service", "status", "container", "ready", "response", "error"), rows, styles=styles, on=on))


def print_doctor(report: DoctorReport, *, as_json: bool) -> None:
    """Each check with ok / warn / fail and its hint."""
    if as_json:
        emit_json({"failed": report.failed, "findings": [asdict(f) for f in report.findings]})
        return
    on = colour_on(sys.stdout)
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for f in report.findings:
        hint = "  " + paint(f"Hint: {f.hint}", "dim", on) if f.hint and f.level != "ok" else ""
        echo(f"{paint(f'{f.level:>4}', colour[f.level], on)}  {f.check:<22} {f.detail}{hint}")


def print_env(result: EnvResult) -> None:
    """What `devenv env` wrote."""
    for warning in result.warnings:
        warn(warning)
    if not result.written:
        echo(f"{result.path}: up to date.")
        return
    generated = f" (generated secrets: {', '.join(result.generated)})" if result.generated else ""
    echo(f"{result.path}: added {len(result.added)} keys{generated}.")


def print_drift(report: DriftReport) -> None:
    """`devenv env --check`: each missing and extra key with its file:line."""
    for item in report.missing:
        echo(f"missing: {item.key} (template {item.where()})")
    for item in report.extra:
        echo(f"extra:   {item.key} ({item.where()}; the template no longer has it)")
    from devenv.project.settings import masked

    for item, value in report.ports:
        echo(f"port:    {item.key} ({item.where()}) should be {masked(value)} (the port the stack uses)")
    if not report.drift:
        echo(f"{report.env_file}: in step with {report.template.name}.")


def print_reset(result: ResetResult, *, as_json: bool) -> None:
    """One line: what the reset did and how long it took (or its JSON)."""
    if as_json:
        emit_json(asdict(result))
        return
    action = {
        "template": "restored from its template",
        "remigrated": f"migrated and seeded anew ({result.reason}), new template taken",
        "cached": "restored from the cached template of its migrations key (template reused, no migrations ran)",
        "hard": "recreated with its volumes",
    }
    echo(
        f"{result.database}: {action[result.mode]}{' (its ready copy swapped in)' if result.from_spare else ''}"
        f"{', Redis db flushed' if result.redis_flushed else ''} in {result.seconds:.2f} s."
    )


def print_down(result: DownResult) -> None:
    """What `devenv down` removed and kept."""
    kept = f"; volumes kept: {', '.join(result.remaining_volumes)}" if result.remaining_volumes else ""
    echo(f"{result.project}: stopped{' and volumes removed' if result.volumes_removed else ''}{kept}.")


def print_masks(lines: Iterable[str]) -> None:
    """GitHub Actions' `::add-mask::` lines, before anything could print a secret."""
    for line in lines:
        echo(line)


def print_ci_up(stack: CiStack, *, as_json: bool) -> None:
    """The CI stack's connection settings (JSON) or one line."""
    if as_json:
        emit_json(stack.variables())
    else:
        echo(f"{stack.name}: healthy in {stack.seconds:.1f} s; server at {stack.server_url}")


def print_gc(stacks: Sequence[StackAge], *, dry_run: bool, older_than: str) -> None:
    """What `devenv gc` removed (or would)."""
    verb = "would remove" if dry_run else "removed"
    for stack in stacks:
        echo(f"{verb} {stack.name}: {stack.containers} containers, {stack.volumes} volumes")
    if not stacks:
        echo(f"nothing older than {older_than}.")


def print_migrate(result: MigrateResult) -> None:
    """What prisma said."""
    echo(result.output.rstrip())


def print_init(result: InitResult) -> None:
    """The proposal: printed whole with --print, else what was written and the settings it pins."""
    if not result.written:
        write(result.text)
    else:
        pinned = [f"{c.table}.{c.key} = {c.value!r} ({c.why})" for c in result.choices if c.active]
        echo(f"{result.path}: written" + (" with:" if pinned else " (every setting is devenv's own finding)."))
        for line in pinned:
            echo(f"  {line}")
    for finding in result.findings:
        echo(f"Note: {finding}", err=result.written is False)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def print_stacks(stacks: Sequence[StackInfo], *, as_json: bool) -> None:
    """`devenv ls`: every stack with its machine, checkout (or "gone"), state, ports, volume size and age."""
    if as_json:
        emit_json({"stacks": [s.as_dict() for s in stacks]})
        return
    if not stacks:
        echo("no devenv stacks on this engine.")
        return
    on = colour_on(sys.stdout)
    rows = []
    for s in stacks:
        checkout = (s.checkout or "(not labelled)") + (" (gone)" if s.gone else "")
        machine = "this one" if s.here else (s.machine_name or s.machine[:8] or "?")
        ports = " ".join(f"{svc}:{port}" for svc, port in s.ports.items()) or "-"
        rows.append(
            (
                s.name + (" [ci]" if s.ci else ""),
                machine,
                checkout,
                s.state,
                ports,
                _size(s.volume_bytes),
                _duration(s.age_seconds),
            )
        )
    styles = {i: "yellow" for i, s in enumerate(stacks) if s.gone}
    echo(
        table(
            f"{len(stacks)} devenv stack{'' if len(stacks) == 1 else 's'}",
            ("name", "machine", "checkout", "state", "ports", "volumes", "age"),
            rows,
            styles=styles,
            on=on,
        )
    )


def print_dev_ready(url: str, seconds: float) -> None:
    """`devenv dev`: the server answers."""
    echo(
        paint(
            f"devenv: ready at {url} ({seconds:.1f} s); Ctrl-C stops the server, the stack stays up.",
            "green",
            colour_on(sys.stderr),
        ),
        err=True,
    )


def print_dev_stopped(code: int) -> None:
    """`devenv dev` after the server's command ended."""
    why = "stopped" if code in {0, 130, 143, -2, -15} else f"the dev command exited with code {code}"
    echo(f"devenv: {why}; the stack is still up (`devenv down` stops it).", err=True)


def print_watch_event(event: WatchEvent) -> None:
    """`devenv watch`: one line per change, reload and migration."""
    on = colour_on(sys.stderr)
    if event.kind == "watching":
        echo("devenv: watching the server (Ctrl-C stops watching; the stack stays up).", err=True)
    elif event.kind in {"syncing", "rebuilding"}:
        echo(f"  {event.kind} ...", err=True)
    elif event.kind == "step":
        echo(f"  building {event.detail}", err=True)
    elif event.kind == "reloaded":
        ms = (event.seconds or 0) * 1000
        echo(paint(f"  reloaded in {ms:.0f} ms ({event.detail})", "green", on), err=True)
    elif event.kind == "migrated":
        echo(paint(f"  migrated: `{event.detail}`", "green", on), err=True)
    elif event.kind == "failed":
        echo(paint(f"  {event.detail}", "red", on), err=True)


# -- databases (`devenv db`) ----------------------------------------------------------------------------------------
def print_db(result: DbResult, *, as_json: bool) -> None:
    """One line: what a `devenv db` command did to the app database (or its JSON); notes on stderr."""
    if as_json:
        emit_json(asdict(result))
        return
    action = {
        "snapshot": f"snapshot {result.name!r} taken",
        "restore": f"restored from snapshot {result.name!r}"
        + (" (its ready copy swapped in)" if result.from_ready else ""),
        "rm": f"snapshot {result.name!r} removed",
        "load": f"loaded from {result.name}",
    }[result.action]
    echo(
        f"{result.database}: {action}{', Redis db flushed' if result.redis_flushed else ''} in {result.seconds:.2f} s."
    )
    for note in result.notes:
        echo(f"Note: {note}", err=True)


def print_db_list(listing: DbListing, *, as_json: bool) -> None:
    """`devenv db list`: snapshots and templates with size, age and migrations key; the current key marked."""
    if as_json:
        emit_json({"database": listing.database, "key": listing.key, "keep": listing.keep,
                   "entries": [asdict(e) for e in listing.entries]})  # fmt: skip
        return
    now = time.time()
    rows = [
        (
            e.kind,
            e.name if e.kind == "snapshot" else "-",
            _size(e.size),
            _duration(now - e.time) if e.time is not None else "-",
            e.key + (" (current)" if e.current else ""),
        )
        for e in listing.entries
    ]
    title = f"{listing.database}: current migrations key {listing.key}; templates kept: {listing.keep}"
    if not rows:
        echo(f"{title}\nno snapshot and no template yet (`devenv db snapshot NAME` takes one).")
        return
    echo(table(title, ["KIND", "NAME", "SIZE", "AGE", "MIGRATIONS KEY"], rows, on=colour_on(sys.stdout)))


def print_dump(result: DumpResult, *, as_json: bool) -> None:
    """Where `devenv db dump` wrote the dump."""
    if as_json:
        emit_json({**asdict(result), "path": str(result.path)})
        return
    echo(f"{result.database}: dumped to {result.path} ({_size(result.size)}) in {result.seconds:.2f} s.")


class ByteProgress:
    """`dumping: 12.3 MB` on a terminal's stderr, redrawn at most 10 times a second; nothing off a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.on = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, total: int) -> None:
        now = time.monotonic()
        if self.on and now - self.last >= 0.1:
            self.last = now
            sys.stderr.write(f"\r{self.label}: {_size(total)}\x1b[K")
            sys.stderr.flush()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on and self.last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# -- databases that follow the work (per-branch databases, clones per test worker) ----------------------------------
def print_clones(result: ClonesResult, *, as_json: bool, env_file: object = None) -> None:
    """The clones `devenv db clones N` made: their URLs as JSON (with passwords), or a table (masked)."""
    if as_json:
        emit_json({**asdict(result), "variables": result.variables()})
        return
    if not result.clones:
        gone = ", ".join(result.dropped) or "none were there"
        echo(f"{result.database}: no clones now (dropped: {gone}).")
        return
    rows = [(f"DATABASE_URL_{c.worker}", c.database, c.masked_url) for c in result.clones]
    how = f", {result.strategy}" if result.strategy else ""
    echo(
        table(
            f"{len(result.clones)} clones of {result.template} in {result.seconds:.2f} s{how}",
            ["variable", "database", "url"],
            rows,
            on=colour_on(sys.stdout),
        )
    )
    where = f"written to {env_file}" if env_file else "--json or --env-file FILE give them with the password"
    echo(f"DEVENV_WORKERS={len(result.clones)}; the URLs: {where}.")


def print_branches(found: BranchList, *, as_json: bool) -> None:
    """The app database's branch and the parked databases of the other branches."""
    if as_json:
        emit_json(asdict(found))
        return
    rows = [("*" if b.current else "", b.branch, b.database, _size(b.size), b.state) for b in found.branches]
    title = f"databases per branch ({'on' if found.enabled else 'off: [db] per_branch = true turns it on'})"
    echo(table(title, ["", "branch", "database", "size", "state"], rows, on=colour_on(sys.stdout)))


def print_switch(result: SwitchResult, *, quiet: bool) -> None:
    """What `devenv db switch` did (the git hook passes --quiet: a line only when something changed)."""
    if result.note and (result.switched or not quiet):
        echo(result.note)
