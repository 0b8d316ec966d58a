"""The compose CLI for one project: its command lines built as data, run through devenv.core.proc.

compose runs with the user's environment plus the variables the generated compose file interpolates into its
labels (the checkout, this machine, the secrets folder); for an ssh engine, devenv's ssh shim first on PATH so its
connections ride devenv's one ssh master (devenv.engine.ssh). A failure is ComposeFailed, or EngineUnreachable when the
output says the engine could not be reached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from devenv.core import proc
from devenv.core.errors import ComposeFailed
from devenv.engine import ssh
from devenv.engine.api import is_connection_error, unreachable
from devenv.engine.models import CHECKOUT_VAR, MACHINE_NAME_VAR, MACHINE_VAR, SECRETS_VAR
from devenv.engine.target import EngineTarget

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(line: str) -> str:
    """LINE without terminal codes (compose writes them even with --no-color)."""
    return ANSI_RE.sub("", line)


def up_args(services: Sequence[str], *, build: bool) -> list[str]:
    return ["up", "--detach", "--remove-orphans", *(["--build"] if build else []), *services]


def build_args(services: Sequence[str], *, progress: bool) -> list[str]:
    return ["build", *(["--progress", "plain"] if progress else ["--quiet"]), *services]


def down_args(*, volumes: bool) -> list[str]:
    return ["down", "--remove-orphans", "--timeout", "10", *(["--volumes"] if volumes else [])]


def logs_args(services: Sequence[str], *, follow: bool = False, tail: int | None = None) -> list[str]:
    return [
        "logs",
        "--no-color",
        *(["--follow"] if follow else []),
        *(["--tail", str(tail)] if tail is not None else []),
        *services,
    ]


def run_args(service: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """A one-off container of SERVICE without its dependencies, ENV set in it."""
    cmd = ["run", "--rm", "--no-deps", "-T"]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    return [*cmd, service, *argv]


class ComposeCli:
    """`docker compose` for the project PROJECT_NAME rendered at COMPOSE_FILE, on the engine TARGET, run with
    ENVIRON plus the checkout (its path), the secrets folder and this MACHINE (id, host name) it labels with."""

    def __init__(
        self,
        project_name: str,
        compose_file: Path,
        project_dir: Path,
        target: EngineTarget,
        *,
        checkout: str = "",
        secrets: str = "",
        machine: tuple[str, str] = ("", ""),
        environ: Mapping[str, str],
    ) -> None:
        self.project_name = project_name
        self.compose_file = compose_file
        self.project_dir = project_dir
        self.target = target
        self.checkout = checkout
        self.secrets = secrets
        self.machine = machine
        self.environ = environ

    def env(self) -> dict[str, str]:
        """The environment compose (and every docker CLI of the stack) runs with: the user's, plus the checkout it
        labels resources with; for an ssh engine, devenv's ssh shim first on PATH (devenv.engine.ssh: one
        connection)."""
        env = {
            **self.environ,
            CHECKOUT_VAR: self.checkout,
            SECRETS_VAR: self.secrets,
            MACHINE_VAR: self.machine[0],
            MACHINE_NAME_VAR: self.machine[1],
        }
        return ssh.environ_with_shim(env) if self.target.scheme == "ssh" else env

    def argv(self, *args: str) -> list[str]:
        """The docker compose command line for this project."""
        return [
            "docker",
            "compose",
            "--project-name",
            self.project_name,
            "--file",
            str(self.compose_file),
            "--project-directory",
            str(self.project_dir),
            *args,
        ]

    def by_name(self, *args: str) -> list[str]:
        """The command line naming the project only (no compose file: compose finds it by its label)."""
        return ["docker", "compose", "--project-name", self.project_name, *args]

    def run(self, args: Sequence[str], on_line: Callable[[str], None] | None = None, *, by_name: bool = False) -> str:
        """Run a compose subcommand; its output, or ComposeFailed (EngineUnreachable for a dead engine)."""
        argv = self.by_name(*args) if by_name else self.argv(*args)
        env = self.env()
        done = proc.stream(argv, on_line, env=env) if on_line is not None else proc.run(argv, env=env)
        if not done.ok:
            self._check_reached(done.output)
            raise ComposeFailed(list(args), done.returncode, done.output)
        return done.output

    def _check_reached(self, output: str) -> None:
        """Raise EngineUnreachable when a failed command's OUTPUT says the engine could not be reached."""
        if is_connection_error(output):
            raise unreachable(output, self.target.url)

    # -- the project's commands -----------------------------------------------------------------------------------
    def up(self, services: Sequence[str], *, build: bool) -> None:
        self.run(up_args(services, build=build))

    def build(self, services: Sequence[str], on_line: Callable[[str], None] | None = None) -> None:
        self.run(build_args(services, progress=on_line is not None), on_line)

    def down(self, *, volumes: bool) -> None:
        # Never rendered here (or .devenv/ was deleted): compose finds the containers by project label.
        self.run(down_args(volumes=volumes), by_name=not self.compose_file.exists())

    def logs(self, services: Sequence[str], *, tail: int | None = None) -> str:
        return plain(self.run(logs_args(services, tail=tail)))

    def stream_logs(
        self, services: Sequence[str], on_line: Callable[[str], None], *, follow: bool, tail: int | None
    ) -> int:
        argv = self.argv(*logs_args(services, follow=follow, tail=tail))
        done = proc.stream(argv, lambda line: on_line(plain(line)), env=self.env())
        if not done.ok:
            self._check_reached(done.output)
        return done.returncode

    def watch(self, services: Sequence[str], on_line: Callable[[str], None]) -> proc.Background:
        argv = self.argv("watch", "--no-up", *services)
        return proc.Background(argv, lambda line: on_line(plain(line)), env=self.env())

    def run_oneoff(self, service: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
        done = proc.run(self.argv(*run_args(service, argv, env)), env=self.env())
        if not done.ok:
            self._check_reached(done.output)
        return done.returncode, done.output

    def exec_out(
        self, service: str, argv: Sequence[str], sink: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        done = proc.pipe_out(self.argv("exec", "-T", service, *argv), sink, on_bytes, env=self.env())
        if not done.ok:
            self._check_reached(done.stderr)
        return done.returncode, done.stderr

    def exec_in(
        self, service: str, argv: Sequence[str], source: BinaryIO, on_bytes: Callable[[int], None]
    ) -> tuple[int, str]:
        done = proc.pipe_in(self.argv("exec", "-T", service, *argv), source, on_bytes, env=self.env())
        if not done.ok:
            self._check_reached(done.output)
        return done.returncode, done.output


def version() -> str:
    """The compose plugin's version ("" when compose v2 is missing)."""
    done = proc.run(["docker", "compose", "version", "--short"])
    return done.stdout.strip() if done.ok else ""
