"""Two checkouts of one project, a git worktree and a deleted checkout, on the real engine, with default
settings: each gets its own stack (name, ports, volumes), none can touch another's, `ls` shows them all and
`down --gone` removes only the stack whose folder is gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from dotenv import dotenv_values

from tests.conftest import EXAMPLE
from tests.integration.helpers import labelled

IGNORE = shutil.ignore_patterns("node_modules", ".devenv", ".env", "dist")


class Checkout:
    """A checkout of the example with default settings: no pinned name, no pinned ports."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def devenv(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devenv", "-C", str(self.root), *args],
            capture_output=True, text=True, env=self.env, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def values(self) -> dict[str, str]:
        return {k: v or "" for k, v in dotenv_values(self.root / "apps" / "server" / ".env").items()}

    def name(self) -> str:
        record = self.root / ".devenv" / "checkout.json"
        if record.exists():
            return str(json.loads(record.read_text())["name"])
        return self.root.name

    def containers(self) -> dict[str, str]:
        """service -> container id of this checkout's stack."""
        done = subprocess.run(
            ["docker", "ps", "-a", "--filter", f"label=devenv.checkout={self.root}",
             "--format", '{{.Label "com.docker.compose.service"}} {{.ID}}'],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return dict(line.split() for line in done.stdout.splitlines())


@pytest.fixture
def default_env(images: dict[str, str]) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}
    env.update(
        DEVENV_POSTGRES_IMAGE=images["postgres"],
        DEVENV_REDIS_IMAGE=images["redis"],
        DEVENV_BUILD_ARG_NODE_IMAGE=images["node"],
        NO_COLOR="1",
    )
    if os.environ.get("DEVENV_BUILD_SECRET_NPM_CA"):
        env["DEVENV_BUILD_SECRET_NPM_CA"] = os.environ["DEVENV_BUILD_SECRET_NPM_CA"]
    return env


@pytest.fixture
def checkouts(tmp_path: Path, default_env: dict[str, str]) -> Iterator[list[Checkout]]:
    made: list[Checkout] = []
    for folder in ("a", "b"):
        root = tmp_path / folder / "monorepo"  # both derive the stack name "monorepo"
        shutil.copytree(EXAMPLE, root, ignore=IGNORE, symlinks=True)
        made.append(Checkout(root, dict(default_env)))
    try:
        yield made
    finally:
        for checkout in made:
            if checkout.root.exists():
                checkout.devenv("down", "--volumes", "--yes")
            for label in (f"devenv.checkout={checkout.root}",):
                for kind in ("container", "volume", "network"):
                    ids = subprocess.run(
                        ["docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q",
                         "--filter", f"label={label}"],
                        capture_output=True, text=True,
                    ).stdout.split()  # fmt: skip
                    if ids:
                        subprocess.run(["docker", kind, "rm", "-f", *ids], capture_output=True)


def _pg(checkout: Checkout) -> psycopg.Connection:  # type: ignore[type-arg]
    return psycopg.connect(checkout.values()["DATABASE_URL"].split("?")[0], connect_timeout=5, autocommit=True)


def test_two_checkouts_of_one_project_come_up_side_by_side_and_never_touch_each_other(
    checkouts: list[Checkout], tmp_path: Path
) -> None:
    a, b = checkouts
    first = a.devenv("up")
    assert first.returncode == 0, first.stderr
    with _pg(a) as conn:
        conn.execute("CREATE TABLE mine (note text)")
        conn.execute("INSERT INTO mine VALUES ('a keeps this')")
    a_ids = a.containers()
    assert set(a_ids) == {"postgres", "redis", "migrate", "server"}

    second = b.devenv("up")
    assert second.returncode == 0, second.stderr
    assert a.name() != b.name() and "belongs to the checkout" in second.stderr  # said once, as it decides
    assert b.name().startswith(a.name()[:9])  # <name>-<hash of the path>
    again = b.devenv("up")  # the name is kept, not said again
    assert again.returncode == 0 and "belongs to the checkout" not in again.stdout + again.stderr
    va, vb = a.values(), b.values()
    assert va["POSTGRES_PORT"] != vb["POSTGRES_PORT"] and va["REDIS_PORT"] != vb["REDIS_PORT"]
    assert set(labelled(f"devenv.project={a.name()}")["volumes"]).isdisjoint(
        labelled(f"devenv.project={b.name()}")["volumes"]
    )
    with _pg(b) as conn:  # B's .env reaches B's own Postgres: no table of A's there
        assert conn.execute("SELECT to_regclass('mine')").fetchone() == (None,)
    assert redis.Redis.from_url(vb["REDIS_URL"], socket_timeout=5).set("who", "b")
    assert redis.Redis.from_url(va["REDIS_URL"], socket_timeout=5).get("who") is None

    assert b.devenv("reset", "--yes").returncode == 0
    assert b.devenv("down", "--volumes", "--yes").returncode == 0
    assert a.containers() == a_ids  # never recreated, stopped or removed by B
    with _pg(a) as conn:
        assert conn.execute("SELECT note FROM mine").fetchall() == [("a keeps this",)]

    # B pins A's name: up, reset and down refuse, naming A's checkout; nothing proposes dropping data.
    b.env["DEVENV_PROJECT_NAME"] = a.name()
    for args in (("up",), ("reset", "--yes"), ("down", "--volumes", "--yes"), ("reset", "--hard", "--yes")):
        refused = b.devenv(*args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert f"belongs to the checkout {a.root}" in refused.stderr, refused.stderr
        assert "reset --hard" not in refused.stderr.split("Hint:")[-1]
    del b.env["DEVENV_PROJECT_NAME"]
    assert a.containers() == a_ids

    # A host port pinned to one A holds: fails fast, naming the holder.
    b.env["DEVENV_POSTGRES_PORT"] = va["POSTGRES_PORT"]
    taken = b.devenv("up", "postgres")
    assert taken.returncode == 2, taken.stderr
    assert f"host port {va['POSTGRES_PORT']} for postgres" in taken.stderr and f"of {a.root}" in taken.stderr
    del b.env["DEVENV_POSTGRES_PORT"]

    listed = json.loads(a.devenv("ls", "--json").stdout)["stacks"]
    mine = [s for s in listed if s["checkout"] == str(a.root)]
    assert len(mine) == 1 and mine[0]["state"] == "running" and mine[0]["name"] == a.name()
    assert mine[0]["ports"]["postgres"] == int(va["POSTGRES_PORT"]) and mine[0]["volume_bytes"] > 0


def test_a_worktree_gets_its_own_stack_and_down_gone_removes_only_a_deleted_checkouts(
    checkouts: list[Checkout], tmp_path: Path, default_env: dict[str, str]
) -> None:
    a, doomed = checkouts
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=a.root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=a.root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=a.root, check=True)
    worktree = tmp_path / "wt" / "monorepo"
    subprocess.run([*git, "worktree", "add", "-q", str(worktree)], cwd=a.root, check=True)
    wt = Checkout(worktree, dict(default_env))
    checkouts.append(wt)

    assert a.devenv("up", "postgres").returncode == 0
    done = wt.devenv("up", "postgres")
    assert done.returncode == 0, done.stderr
    assert wt.name() != a.name() and wt.values()["POSTGRES_PORT"] != a.values()["POSTGRES_PORT"]

    assert doomed.devenv("up", "postgres").returncode == 0
    doomed_name = doomed.name()
    shutil.rmtree(doomed.root.parent)  # the checkout is deleted without `down`
    listed = {s["name"]: s for s in json.loads(a.devenv("ls", "--json").stdout)["stacks"]}
    assert listed[doomed_name]["gone"] is True and listed[a.name()]["gone"] is False
    asked = a.devenv("down", "--gone", "--running")  # its containers still run: only --running takes them
    assert asked.returncode == 2 and "--yes" in asked.stderr  # no terminal: nothing removed without --yes
    assert labelled(f"devenv.project={doomed_name}")["volumes"]
    removed = a.devenv("down", "--gone", "--running", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert f"{doomed_name}: removed" in removed.stdout
    assert labelled(f"devenv.project={doomed_name}") == {"containers": [], "networks": [], "volumes": []}
    for alive in (a, wt):  # nothing else
        assert alive.containers() and labelled(f"devenv.project={alive.name()}")["volumes"]
