"""The dev loop on the real engine: the server on the host (`up` migrates from the host, `devenv dev` serves,
Ctrl-C leaves nothing behind), its one-line refusals, and the container reloaded by `devenv watch`."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.helpers import FIXTURES
from tests.integration.helpers import ExampleProject, eventually, get_json, make_project, remove


class Running:
    """A devenv command in the background, its stderr lines in a queue."""

    def __init__(self, project: ExampleProject, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devenv", "-C", str(project.root), *args],
            env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, fragment: str, timeout: float = 240) -> str:
        def found() -> str | None:
            while True:
                try:
                    line = self.lines.get(timeout=0.2)
                except queue.Empty:
                    return None
                self.seen.append(line)
                if fragment in line:
                    return line

        try:
            return str(eventually(found, lambda line: line is not None, timeout=timeout, interval=0))
        except AssertionError as ex:
            raise AssertionError(f"{fragment!r} never came; saw:\n{''.join(self.seen)}") from ex

    def interrupt(self, timeout: float = 60) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)


def _watchers(project: ExampleProject) -> list[str]:
    """The `docker compose … watch` processes of PROJECT's stack still running."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if b"watch" in argv and project.name.encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def _processes_in(folder: Path) -> list[int]:
    """PIDs whose working directory is FOLDER (what `devenv dev` started there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).resolve() == folder.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def host_example(tmp_path: Path) -> Iterator[ExampleProject]:
    project = make_project(tmp_path)
    project.env["DEVENV_SERVER_MODE"] = "host"
    try:
        yield project
    finally:
        remove(project)


def test_host_mode_migrates_from_the_host_serves_and_leaves_nothing_behind(host_example: ExampleProject) -> None:
    install = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=host_example.root, capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stdout + install.stderr
    up = host_example.devenv("up")
    assert up.returncode == 0, up.stderr
    assert "migrated from the host: `npx prisma migrate deploy`" in up.stdout
    assert "seeded the new database: `npx prisma db seed` (on the host)" in up.stdout
    with psycopg.connect(host_example.env_values()["DATABASE_URL"].split("?")[0], connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM quotes").fetchone() == (3,)

    dev = Running(host_example, "dev")
    ready = dev.wait_for("devenv: ready at")
    assert f"http://127.0.0.1:{host_example.port('server')}/health/ready" in ready
    status, quotes = get_json(f"http://127.0.0.1:{host_example.port('server')}/v1/quotes")
    assert status == 200 and len(quotes["quotes"]) == 3  # type: ignore[index]
    assert _processes_in(host_example.server_dir)  # npm and node run there
    assert dev.interrupt() == 130  # SIGINT to devenv (off a terminal): passed on to the dev command's group
    assert "devenv: stopped; the stack is still up" in dev.wait_for("the stack is still up", timeout=10)
    assert eventually(lambda: _processes_in(host_example.server_dir), lambda pids: not pids, timeout=10) == []
    assert host_example.devenv("status").returncode in (0, 1)  # the stack stays up (the server row is down now)
    assert "running" in subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", host_example.container("postgres")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_dev_refuses_in_one_line_without_a_dev_script_or_with_its_port_taken(tmp_path: Path) -> None:
    project = make_project(tmp_path, FIXTURES / "host-app", "apps/server")
    try:
        assert project.devenv("up").returncode == 0
        package = project.server_dir / "package.json"
        package.write_text(json.dumps({"name": "@host-app/server", "scripts": {"start": "node src/index.js"}}))
        missing = project.devenv("dev")
        assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
        assert "has no `dev` script" in missing.stderr and "Hint:" in missing.stderr
        package.write_text(
            json.dumps({"name": "@host-app/server", "scripts": {"dev": "node -e 'setInterval(()=>{},1e3)'"}})
        )
        with socket.socket() as held:
            held.bind(("127.0.0.1", project.port("server")))
            held.listen()
            taken = project.devenv("dev")
        assert taken.returncode == 2 and len(taken.stderr.strip().splitlines()) == 1, taken.stderr
        assert f"host port {project.port('server')} for the server is already in use" in taken.stderr
    finally:
        remove(project)


def test_watch_reloads_an_edited_source_and_rebuilds_on_a_changed_package_json(example: ExampleProject) -> None:
    assert example.devenv("up").returncode == 0
    watch = Running(example, "watch")
    watch.wait_for("devenv: watching the server")
    app = example.server_dir / "src" / "app.js"
    app.write_text(app.read_text().replace('res.json({ name: "quotes-api"', 'res.json({ edited: 1, name: "quotes-api"'))
    watch.wait_for("reloaded in")
    assert get_json(f"http://127.0.0.1:{example.port('server')}/")[1]["edited"] == 1  # type: ignore[index]

    package = example.server_dir / "package.json"
    data = json.loads(package.read_text())
    data["description"] += " (edited)"
    package.write_text(json.dumps(data, indent=2) + "\n")
    watch.wait_for("rebuilding")
    watch.wait_for("reloaded in", timeout=400)
    watch.wait_for("migrated:")  # compose ran the migrate job again for the new image
    assert get_json(f"http://127.0.0.1:{example.port('server')}/")[1]["edited"] == 1  # type: ignore[index]
    # Ctrl-C (SIGINT to the group, as a terminal sends it) ends the watch at once with 130, whatever the runner
    # started the test with (a shell without job control starts it with SIGINT ignored), and takes compose's along.
    assert watch.interrupt() == 130
    assert "watch stopped; the stack is still up" in watch.wait_for("watch stopped", timeout=10)
    assert _watchers(example) == []
    assert example.devenv("status").returncode == 0  # watching stopped; the stack did not

    # And in the middle of a rebuild: compose's build goes with it.
    again = Running(example, "watch")
    again.wait_for("devenv: watching the server")
    data["description"] += " (again)"
    package.write_text(json.dumps(data, indent=2) + "\n")
    again.wait_for("rebuilding")
    assert again.interrupt() == 130
    assert _watchers(example) == []
