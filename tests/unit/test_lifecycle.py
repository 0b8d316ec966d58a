"""`up` through the context with a fake runtime and fake connectors: service selection, the no-op second up (and
what it reads), port checks, the seed and the reset template on a new database, remote engines."""

from __future__ import annotations

import os

import pytest

from devenv.commands.lifecycle import build_fingerprint, down, up
from devenv.core.errors import MigrationFailed, PortInUse, UsageError
from devenv.core.state import load_state, save_state
from devenv.project import context, envfile
from devenv.project.discovery import Project, load_project
from devenv.project.services import expand_services, port_claims
from devenv.stack.render import write_compose
from tests.fakes import FakeConnectors, FakeRuntime, state
from tests.fixtures.helpers import context_of

PUBLISHED = {"postgres": {5432: 49001}, "redis": {6379: 49002}, "server": {3000: 49003}}


def running_stack() -> list:  # type: ignore[type-arg]
    return [
        state("postgres", health="healthy", ports=PUBLISHED["postgres"]),
        state("redis", health="healthy", ports=PUBLISHED["redis"]),
        state("migrate", "exited", exit_code=0),
        state("server", health="healthy", ports=PUBLISHED["server"]),
    ]


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ([], ["postgres", "redis", "migrate", "server"]),
        (["postgres", "redis"], ["postgres", "redis"]),
        (["migrate"], ["postgres", "migrate"]),
        (["server"], ["postgres", "redis", "migrate", "server"]),
    ],
)
def test_expand_services_adds_dependencies_in_start_order(asked: list[str], expected: list[str]) -> None:
    assert expand_services(asked) == expected


def test_unknown_service_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown service 'postgress' \(did you mean 'postgres'\?\)") as info:
        expand_services(["postgress"])
    assert info.value.hint and "postgres" in info.value.hint


def test_port_claims_name_the_setting(example: Project) -> None:
    claims = {c.service: c for c in port_claims(example.config, ["postgres", "redis", "server"])}
    assert claims["postgres"].port == 5432 and "DEVENV_POSTGRES_PORT" in claims["postgres"].setting
    assert "server.port" in claims["server"].setting


def _ephemeral(example: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    for var in ("DEVENV_POSTGRES_PORT", "DEVENV_REDIS_PORT", "DEVENV_SERVER_PORT"):
        monkeypatch.setenv(var, "0")  # Docker-chosen: independent of what else runs on this machine
    return load_project(example.root)


def test_a_new_database_is_seeded_marked_and_templated(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _ephemeral(example, monkeypatch)
    runtime = FakeRuntime(states=running_stack())
    fakes = FakeConnectors()
    result = up(context_of(project, runtime=runtime, connectors=fakes))
    db = envfile.read_env(project)["POSTGRES_DB"]
    assert result.compose_work is True and result.seeded is True
    # The image is built first; compose then only starts what was built; the seed runs once, on the new database.
    assert [c for c in runtime.calls if c[0] in {"build", "up", "run"}] == [
        ("build", (("server",),)),
        ("up", (("postgres", "redis", "migrate", "server"), False)),
        ("run", ("migrate", ("npx", "prisma", "db", "seed"))),
    ]
    assert "seeded the new database: `npx prisma db seed`." in result.notes
    marks = fakes.cluster.databases
    # The cluster is known as this checkout's stack's own.
    assert marks["postgres"] == f"devenv-project:{project.name}@{project.root} on this-machine-id"
    assert marks[db] == "devenv:seeded" and (marks[f"{db}__devenv_template"] or "").startswith("devenv-template:")
    # Every connection went to the ports Docker published, read off the container states.
    assert {(kind, port) for kind, _, port in fakes.seen if kind != "server"} == {("postgres", 49001), ("redis", 49002)}
    assert ("server", "http://127.0.0.1:49003", 0) in fakes.seen
    urls = {r.service: r.url for r in result.services}
    assert urls["postgres"] == f"postgresql://app:***@127.0.0.1:49001/{db}" and urls["server"].endswith(":49003")


def test_without_a_seed_nothing_is_run_and_up_says_so(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    (example.server_dir / "prisma.config.ts").unlink()  # the example configures its seed there
    project = _ephemeral(example, monkeypatch)
    runtime = FakeRuntime(states=running_stack())
    fakes = FakeConnectors()
    result = up(context_of(project, runtime=runtime, connectors=fakes))
    assert result.seeded is False and not [c for c in runtime.calls if c[0] == "run"]
    assert any(n.startswith("no seed configured") for n in result.notes)
    db = envfile.read_env(project)["POSTGRES_DB"]
    assert fakes.cluster.databases[db] == "devenv:seeded"  # migrated, marked: the next up does not look again


def test_second_up_with_nothing_changed_does_no_compose_work_and_reads_each_dotenv_file_once(
    example: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _ephemeral(example, monkeypatch)
    runtime = FakeRuntime(states=running_stack())
    fakes = FakeConnectors()
    first = context_of(project, runtime=runtime, connectors=fakes)
    up(first)  # writes .env and takes the template
    digest = write_compose(context_of(project)).digest
    save_state(project.state_dir, {"fingerprint": {"compose": digest, "build": build_fingerprint(project.root, ".")}})
    runtime.calls.clear()

    reads: list[str] = []
    real_read = envfile.read_text

    def counting(path, what):  # type: ignore[no-untyped-def]
        reads.append(path.name)
        return real_read(path, what)

    monkeypatch.setattr(envfile, "read_text", counting)
    result = up(context.load(project.root, environ=dict(os.environ), runtime=runtime, connectors=fakes))
    assert result.compose_work is False and result.seeded is False
    assert not [c for c in runtime.calls if c[0] in {"up", "run", "build"}]
    assert sorted(reads) == [".env", ".env.template"]  # each parsed once, at the top of the command
    assert [c for c in runtime.calls if c[0] == "containers"] == [("containers", ())]  # one engine call in all

    (project.server_dir / "src.js").write_text("// a code change\n")
    changed = up(context_of(project, runtime=runtime, connectors=fakes))
    assert changed.compose_work is True
    assert [c for c in runtime.calls if c[0] in {"build", "up"}] == [
        ("build", (("server",),)),
        ("up", (("postgres", "redis", "migrate", "server"), False)),
    ]


def test_up_refuses_a_taken_port_before_starting_anything(
    example: Project, monkeypatch: pytest.MonkeyPatch, held_port: int
) -> None:
    monkeypatch.setenv("DEVENV_POSTGRES_PORT", str(held_port))
    taken = load_project(example.root)
    runtime = FakeRuntime()
    with pytest.raises(PortInUse) as info:
        up(context_of(taken, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    assert str(held_port) in info.value.message and "DEVENV_POSTGRES_PORT" in (info.value.hint or "")
    assert not [c for c in runtime.calls if c[0] == "up"]


def test_a_remote_engine_needs_an_explicit_bind_address(example: Project) -> None:
    class Remote(FakeRuntime):
        def host_address(self) -> str:
            return "build-box"

    with pytest.raises(UsageError, match="remote") as info:
        up(context_of(example, runtime=Remote(), connectors=FakeConnectors()))
    assert info.value.hint and "DEVENV_BIND_ADDRESS=0.0.0.0" in info.value.hint


def test_a_failed_up_still_knows_which_env_values_it_wrote(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _ephemeral(example, monkeypatch)
    failing = [*running_stack()[:2], state("migrate", "exited", exit_code=1), running_stack()[3]]
    with pytest.raises(MigrationFailed):
        up(context_of(project, runtime=FakeRuntime(states=failing), connectors=FakeConnectors()))
    written = envfile.written_marks(envfile.read_env(project))
    assert written and "DATABASE_URL" in written  # .env was written before the migrate job failed
    assert load_state(project.state_dir)["env_written"] == written

    # The next `up` treats them as its own: it points them at the ports in use (a hand-written value it would not).
    result = up(context_of(project, runtime=FakeRuntime(states=running_stack()), connectors=FakeConnectors()))
    assert envfile.read_env(project)["POSTGRES_PORT"] == "49001"
    assert any(n.startswith(".env now points at the ports in use") for n in result.notes)


def test_down_keeps_which_env_values_devenv_wrote(example: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _ephemeral(example, monkeypatch)
    runtime = FakeRuntime(states=running_stack())
    up(context_of(project, runtime=runtime, connectors=FakeConnectors()))
    written = load_state(project.state_dir)["env_written"]
    down(context_of(project, runtime=runtime, connectors=FakeConnectors()))
    after = load_state(project.state_dir)
    assert "fingerprint" not in after and after["env_written"] == written


def test_a_seeded_database_is_neither_seeded_nor_templated_again(
    example: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _ephemeral(example, monkeypatch)
    runtime = FakeRuntime(states=running_stack())
    fakes = FakeConnectors()
    up(context_of(project, runtime=runtime, connectors=fakes))
    save_state(project.state_dir, {})  # compose work again, on the same volume
    runtime.calls.clear()
    fakes.cluster.statements.clear()
    result = up(context_of(project, runtime=runtime, connectors=fakes))
    assert result.compose_work is True and result.seeded is False
    assert not [c for c in runtime.calls if c[0] == "run"]
    assert not [n for n in result.notes if "seed" in n]
    # The cluster is marked again (it may be a new container); the template is not taken again.
    assert any(s.startswith("COMMENT ON DATABASE") and "devenv-project:" in s for s in fakes.cluster.statements)
    assert not [s for s in fakes.cluster.statements if "__devenv_template" in s]
