"""The dev loop: edit code and see the server pick it up.

- Host mode (`server.mode = "host"`, the default without a Dockerfile): `devenv up` starts Postgres and Redis and
  migrates from the host; `devenv dev` runs the server's own dev command (package.json's `dev` script, or
  `server.dev_command`) in the foreground with the .env values, says "ready at …" once its readiness route
  answers, and on Ctrl-C stops its whole process group; the stack stays up. The project's watcher (tsx, nodemon,
  `node --watch`) does the reloading.
- Container mode: `devenv watch` (or `up --watch`) runs `docker compose watch` on the server with the rules
  devenv rendered (devenv.stack.render.watch_rules): sources synced and the server restarted, manifests rebuilt, a
  Prisma change rebuilt (compose re-runs the migrate job for the new image, as the server depends on it); after
  each one devenv waits for readiness itself and says how long it took, and what the migrate job said.
"""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from devenv.core import proc
from devenv.core.errors import ConfigError, DevenvError, PortInUse, ServiceNotReady, StackNotRunning, UsageError
from devenv.core.wait import wait_for
from devenv.project.context import Context, host_port
from devenv.stack.build import BuildLog
from devenv.stack.migrate import host_env, migrate_outcome
from devenv.stack.probes import FALLBACK_PATHS, HttpProbe


def dev_argv(ctx: Context) -> list[str]:
    """The dev command: server.dev_command, else the package.json `dev` script with the project's package manager."""
    cfg, app, project = ctx.config, ctx.app, ctx.project
    if cfg.server.dev_command:
        return list(cfg.server.dev_command)
    where = app.path or project.server_dir / "package.json"
    if "dev" not in app.scripts:
        raise UsageError(
            f"{where} has no `dev` script: devenv dev does not know how to start the server.",
            'add one (e.g. "dev": "node --watch src/index.js", or "tsx watch src/index.ts"), or set '
            "server.dev_command in devenv.toml.",
        )
    return app.run_argv("dev", project.root)


def _readiness(ctx: Context, url: str) -> HttpProbe:
    cfg = ctx.config
    fallbacks = () if cfg.is_pinned("server.ready_path") else (cfg.server.health_path, *FALLBACK_PATHS)
    return HttpProbe(ctx.connectors.server(url), cfg.server.ready_path, fallbacks)


def dev(
    ctx: Context,
    *,
    timeout: float = 120.0,
    on_ready: Callable[[str, float], None] = lambda url, seconds: None,
) -> int:
    """Run the server's dev command on the host against the stack until it exits or Ctrl-C; its exit code."""
    project, stack = ctx.project, ctx.stack
    if not stack.server_on_host:
        raise UsageError(
            "the server runs in a container here (server.mode = container): `devenv dev` runs it on the host.",
            "`devenv watch` reloads the container on changes; or run it on the host: DEVENV_SERVER_MODE=host "
            'devenv up && DEVENV_SERVER_MODE=host devenv dev (server.mode = "host" in devenv.toml keeps it).',
        )
    if ctx.endpoints.postgres_port is None or not ctx.postgres.probe():
        raise StackNotRunning("the stack is not running: the server would have no database.", "`devenv up` first.")
    argv = dev_argv(ctx)
    port, port_env = host_port(ctx)
    from devenv.engine.ports import port_is_free
    from devenv.stack import checkouts

    if not port_is_free(port):
        holder = checkouts.holder(ctx.runtime, port)
        raise PortInUse(
            f"host port {port} for the server is already in use on 127.0.0.1, by {holder}.",
            f"stop what holds it (`ss -ltnp 'sport = :{port}'`) or set server.port / DEVENV_SERVER_PORT.",
        )
    env = {**host_env(ctx), **port_env}
    url = f"http://127.0.0.1:{port}"
    probe = _readiness(ctx, url)

    def on_start(child: object) -> None:
        t0 = time.monotonic()

        def alive() -> None:
            code = child.poll()  # type: ignore[attr-defined]
            if code is not None:
                raise ServiceNotReady(
                    f"the dev command `{' '.join(argv)}` exited with code {code} before {url} answered.",
                    "its output is above; fix the cause and run `devenv dev` again.",
                )

        wait_for(
            probe,
            timeout=timeout,
            watch=alive,
            hint=f"its output is above (a watcher such as tsx or nodemon keeps running after the server crashed); "
            f"is it listening on {port} (server.port)? raise the deadline with --timeout.",
        )
        if probe.chosen:  # `status` checks the same route
            from devenv.core.state import load_state, save_state

            save_state(project.state_dir, {**load_state(project.state_dir), "ready_path": probe.chosen})
        on_ready(f"{url}{probe.chosen or ''}", time.monotonic() - t0)

    return proc.supervised(
        argv,
        env=env,
        cwd=project.server_dir,
        on_start=on_start,
        hint=_missing_hint(argv[0], ctx.app.install_command(project.root)),
    )


def _missing_hint(program: str, install: str) -> str:
    """What to do when PROGRAM, the dev command's first word, is not on PATH."""
    if program in {"pnpm", "yarn"}:
        how = f"`corepack enable` (it comes with Node) or `npm install -g {program}` installs it"
    elif program == "bun":
        how = "bun is installed on its own (bun.sh)"
    else:
        how = f"`{install}` installs the project's own tools"
    return f"is {program} installed and on PATH? ({how}); server.dev_command in devenv.toml sets another dev command."


# -- container mode: compose watch --------------------------------------------------------------------------------
def watching(ctx: Context) -> Context:
    """CTX as `devenv watch` builds the server: from server.dev_dockerfile when there is one (a dev image with its
    watcher, dev dependencies); the target stage is server.target as always."""
    from dataclasses import replace

    cfg = ctx.config
    if not cfg.server.dev_dockerfile:
        return ctx
    if not (ctx.project.root / cfg.server.dev_dockerfile).is_file():
        raise ConfigError(
            f"{cfg.where('server.dev_dockerfile')} = {cfg.server.dev_dockerfile!r}: "
            f"{ctx.project.root / cfg.server.dev_dockerfile} does not exist.",
            "set server.dev_dockerfile (relative to the project root) to the dev image's Dockerfile, or remove it "
            "to watch with server.dockerfile.",
        )
    server = replace(cfg.server, dockerfile=cfg.server.dev_dockerfile)
    return ctx.for_project(replace(ctx.project, config=replace(cfg, server=server)), runtime=ctx.runtime)


@dataclass(frozen=True)
class WatchEvent:
    """What `devenv watch` saw: a change synced, a rebuild, the server ready again (and how long it took)."""

    kind: str  # watching | syncing | rebuilding | step | reloaded | migrated | failed
    seconds: float | None = None
    detail: str = ""


_SYNCING = re.compile(r'Syncing "?([\w.-]+)"? after changes were detected')
_REBUILDING = re.compile(r'Rebuilding service "?([\w.-]+)"? after changes were detected')
_STARTED = re.compile(r"Container \S+\s+(Started|Recreated|Restarted)\s*$")
_FAILED = re.compile(r"Application failed to start after update\.?\s*(?:Error:\s*)?(.*)$")
_BUILT = re.compile(r'service "?([\w.-]+)"? successfully built')


def watch(
    ctx: Context,
    *,
    timeout: float = 120.0,
    on_event: Callable[[WatchEvent], None] = lambda event: None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Run `compose watch` on the stack's server until Ctrl-C (or STOP says so); after each sync or rebuild wait
    for the server's readiness and report the time from the change compose saw; a Prisma change also migrates."""
    if not ctx.stack.server:
        raise UsageError(
            f"this project's stack has no server container to watch ({ctx.stack.server_reason}).",
            "run it on the host with its own watcher: `devenv dev`.",
        )
    lines: queue.Queue[str] = queue.Queue()
    background = ctx.runtime.watch(["server"], lines.put)
    pending: tuple[str, float] | None = None  # (syncing | rebuilding, when compose saw the change)
    replaced: str | None = None  # the server container a rebuild replaces
    log = BuildLog(on_step=lambda step: on_event(WatchEvent("step", detail=step.label())))
    try:
        while not stop():
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if not background.running():
                    code = background.stop()
                    tail = "".join(background.lines[-20:])
                    raise ServiceNotReady(
                        f"`docker compose watch` stopped (exit {code}).", "its output is below.", details=tail or None
                    ) from None
                continue
            log.feed(line)
            if "Watch enabled" in line:  # from here on compose sees changes
                on_event(WatchEvent("watching", detail="server"))
            elif _SYNCING.search(line):
                pending = ("syncing", time.monotonic())
                on_event(WatchEvent("syncing"))
            elif _REBUILDING.search(line):
                pending = ("rebuilding", time.monotonic())
                replaced = _server_id(ctx)  # compose recreates it after the build, without saying so
                log = BuildLog(on_step=lambda step: on_event(WatchEvent("step", detail=step.label())))
                on_event(WatchEvent("rebuilding"))
            elif pending and (_STARTED.search(line) or _BUILT.search(line)):
                what, since = pending
                pending = None
                try:
                    if what == "rebuilding":
                        _replaced(ctx, replaced, timeout)
                    live = _ready_again(ctx, timeout)
                except DevenvError as ex:  # this change failed; the next one may fix it: keep watching
                    on_event(WatchEvent("failed", detail=ex.render().removeprefix("Error: ")))
                    continue
                on_event(WatchEvent("reloaded", time.monotonic() - since, f"{what}; {live}"))
                if what == "rebuilding" and ctx.stack.migrates:  # compose re-ran the migrate job for the new image
                    on_event(WatchEvent("migrated", detail=_migrate_said(ctx)))
            elif _FAILED.search(line):
                pending = None
                said = _FAILED.search(line)
                hint = " (`devenv logs migrate` shows why)" if "migrate" in line else ""
                on_event(WatchEvent("failed", detail=f"after the change: {said.group(1) if said else line}{hint}"))
            elif log.error is not None and pending and pending[0] == "rebuilding":
                on_event(WatchEvent("failed", detail=f"the rebuild failed: {log.error[1]}"))
                pending = None
    finally:
        background.stop()
    return 0


def _migrate_said(ctx: Context) -> str:
    """What the migrate job compose re-ran after the rebuild said (its command and outcome)."""
    try:
        outcome = migrate_outcome(ctx.runtime.logs(["migrate"], tail=40))
    except DevenvError:
        outcome = ""
    return " ".join(ctx.config.migrate.command) + (f": {outcome}" if outcome else "")


def _server_id(ctx: Context) -> str | None:
    found = [c.id for c in ctx.runtime.containers(detail=False) if c.service == "server" and not c.oneoff]
    return found[0] if found else None


def _replaced(ctx: Context, old: str | None, timeout: float) -> None:
    """Wait until compose has replaced the server container OLD with one of the new image."""
    from devenv.core.wait import poll_until

    def new_one() -> bool:
        current = _server_id(ctx)
        return current is not None and current != old

    if not poll_until(new_one, timeout=timeout, interval=0.1):
        raise ServiceNotReady("the server was not recreated after the rebuild.", "see `devenv logs server`.")


class _Restarted:
    """The server's readiness, read at its current address on each try: a restart or a recreation can move its
    published port (port 0), and for a moment the old container and the new one are both listed."""

    name = "server"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.url = ""
        self.probe: HttpProbe | None = None

    def check(self) -> bool:
        running = [
            c
            for c in self.ctx.runtime.containers(detail=False)
            if c.service == "server" and not c.oneoff and c.status == "running" and c.ports
        ]
        if not running:
            return False
        newest = max(running, key=lambda c: c.created)
        port = newest.ports.get(self.ctx.config.server.container_port)
        if port is None:
            return False
        url = f"http://{self.ctx.runtime.host_address()}:{port}"
        if self.probe is None or url != self.url:
            self.url, self.probe = url, _readiness(self.ctx, url)
        return self.probe.check()


def _ready_again(ctx: Context, timeout: float) -> str:
    """Wait for the restarted (or recreated) server's readiness; the URL it answers on."""
    restarted = _Restarted(ctx)
    wait_for(restarted, timeout=timeout, hint="see `devenv logs server`; the watch goes on.")
    chosen = restarted.probe.chosen if restarted.probe else None
    return f"{restarted.url}{chosen or ''}"
