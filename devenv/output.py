"""The CLI's edge: live progress, summary tables and --json output. Core modules never print; this one does."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from types import TracebackType
from typing import TYPE_CHECKING, Any

from devenv.stack import Event

if TYPE_CHECKING:  # rich costs ~60 ms to import: only the human output pays for it
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from devenv.doctor import DoctorReport
    from devenv.stack import UpResult
    from devenv.status import StatusReport

STYLES = {
    "starting": "yellow",
    "waiting": "yellow",
    "ready": "green",
    "migrated": "green",
    "seeding": "yellow",
    "seeded": "green",
    "unchanged": "green",
    "failed": "bold red",
}


LOG_WIDTH = 200  # columns when writing to a pipe or a file: CI logs are not 80 columns wide


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=not stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Rich assumes 80 columns off a terminal and folds the URLs in the table; a URL is copied from a log.
        console.width = LOG_WIDTH
    return console


def emit_json(obj: dict[str, Any]) -> None:
    """One NDJSON line on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


class UpDisplay:
    """A live status line per service while `up` waits (or NDJSON events with --json)."""

    def __init__(self, services: list[str], *, as_json: bool) -> None:
        self.as_json = as_json
        self.rows: dict[str, Event] = {s: Event(s, "starting", 0.0) for s in services}
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._live: Live | None = None
        self._console: Console | None = None

    def __enter__(self) -> UpDisplay:
        if not self.as_json:
            from rich.live import Live

            self._console = _console(stderr=True)
            if self._console.is_terminal:
                self._live = Live(self._render(), console=self._console, refresh_per_second=10, transient=True)
                self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def on_event(self, event: Event) -> None:
        with self._lock:
            if self.as_json:
                emit_json({"event": "progress", **asdict(event), "elapsed": round(event.elapsed, 3)})
                return
            self.rows[event.service] = event
            if self._live is not None:
                self._live.update(self._render())
            elif self._console is not None and event.phase in {"ready", "migrated", "seeded", "failed"}:
                self._console.print(f"  {event.service:<9} {event.phase} ({event.elapsed:.2f} s)")

    def _render(self) -> Text:
        from rich.text import Text

        text = Text()
        for service, event in self.rows.items():
            text.append(f"  {service:<9} ", style="bold")
            text.append(event.phase, style=STYLES.get(event.phase, ""))
            if event.phase not in {"ready", "migrated", "seeded", "unchanged", "failed"}:
                text.append(f"  {time.monotonic() - self._t0:5.1f} s", style="dim")
            else:
                text.append(f"  {event.elapsed:5.2f} s", style="dim")
            text.append("\n")
        return text


def print_up(result: UpResult, *, as_json: bool) -> None:
    """The summary after `up`: service, state, host URL (passwords masked), seconds to ready."""
    if as_json:
        emit_json({"event": "summary", **asdict(result)})
        return
    from rich.table import Table

    stdout = _console()
    table = Table(title=f"devenv: {result.project} is up ({result.elapsed:.2f} s)", title_justify="left")
    for col in ("service", "state", "url", "ready after"):
        table.add_column(col, overflow="fold")  # a URL is copied from here: never cut it with an ellipsis
    for row in result.services:
        seconds = f"{row.seconds:.2f} s" if row.seconds is not None else "-"
        table.add_row(row.service, row.state, row.url, seconds)
    stdout.print(table)
    if not result.compose_work:
        stdout.print("Nothing changed: no compose work was needed.")
    if result.seeded:
        stdout.print("Seeded the new database.")
    if result.env_added:
        stdout.print(f".env: added {', '.join(result.env_added)}")


def print_status(report: StatusReport, *, as_json: bool) -> None:
    """The status table (or the review's JSON shape)."""
    if as_json:
        emit_json(report.as_dict())
        return
    from rich.table import Table

    stdout = _console()
    colour = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}[report.status]
    table = Table(title=f"{report.project}: [{colour}]{report.status}[/]", title_justify="left")
    for col in ("service", "status", "container", "ready", "response", "error"):
        table.add_column(col)
    for name, check in report.checks.items():
        ms = f"{check.responseTime:.0f} ms" if check.responseTime is not None else "-"
        table.add_row(name, check.status, check.container, "yes" if check.ready else "no", ms, check.error or "")
    stdout.print(table)


def print_doctor(report: DoctorReport, *, as_json: bool) -> None:
    """Each check with ok / warn / fail and its hint."""
    if as_json:
        emit_json({"failed": report.failed, "findings": [asdict(f) for f in report.findings]})
        return
    stdout = _console()
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for f in report.findings:
        hint = f"  [dim]Hint: {f.hint}[/]" if f.hint and f.level != "ok" else ""
        stdout.print(f"[{colour[f.level]}]{f.level:>4}[/]  {f.check:<22} {f.detail}{hint}")
