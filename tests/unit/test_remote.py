"""A remote or shared engine, without one: where the stack answers, whose stack it is, which ports are free.

The same paths run on a real second engine in tests/integration/test_remote.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devenv.commands.lifecycle import up
from devenv.core import machine
from devenv.core.errors import NotOurDatabase, PortInUse
from devenv.core.proc import Completed
from devenv.db.marks import cluster_mark, verify_cluster
from devenv.db.templates import check_database_url
from devenv.engine import target as engine
from devenv.engine.ports import EnginePorts, answers_at
from devenv.engine.runtime import LabelledStack
from devenv.project import envfile
from devenv.project.discovery import Project, load_project
from devenv.project.envfile import HostPorts, ensure_env, port_mismatches, read_env_files, sync_ports, written_marks
from devenv.stack import checkouts
from tests.fakes import FakeCluster, FakeConnectors, FakeRuntime, FakeSession, state
from tests.fixtures.helpers import context_of

ME = "this-machine-id"
OTHER = "0123456789abcdef0123456789abcdef"


def labelled(path: str | Path, machine_id: str, name: str = "box-b", service: str = "postgres"):  # type: ignore[no-untyped-def]
    s = state(service)
    labels = {
        "devenv.project": "quotes",
        "devenv.checkout": str(path),
        "devenv.machine": machine_id,
        "devenv.machine.name": name,
    }
    return type(s)(**{**s.__dict__, "labels": labels})


# -- where the engine is and where its ports answer ------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1"),
        ("tcp://127.0.0.1:2375", "127.0.0.1"),
        ("tcp://localhost:2375", "127.0.0.1"),
        ("tcp://10.213.47.2:2375", "10.213.47.2"),
        ("tcp://build-box:2376", "build-box"),
        ("ssh://me@10.213.47.2", "10.213.47.2"),
    ],
)
def test_where_published_ports_answer(url: str, address: str) -> None:
    target = engine.EngineTarget(url, engine.address_of(url, {}), "DOCKER_HOST")
    assert target.address == address and target.remote is (address != "127.0.0.1")


def test_an_ssh_alias_is_resolved_as_ssh_resolves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> Completed:
        seen.append(list(argv))
        return Completed(tuple(argv), 0, "user root\nhostname 10.213.47.2\nport 22\n", "", 0.0)

    monkeypatch.setattr(engine.proc, "run", fake_run)
    engine._SSH_NAMES.clear()
    target = engine.resolve({"DOCKER_HOST": "ssh://dvbox"})
    assert target.address == "10.213.47.2" and target.ssh_target == "dvbox" and target.remote
    assert seen == [["ssh", "-G", "--", "dvbox"]]
    engine.resolve({"DOCKER_HOST": "ssh://dvbox"})
    assert len(seen) == 1  # asked once per process


def test_devenv_engine_host_overrides_the_address() -> None:
    env = {"DOCKER_HOST": "tcp://127.0.0.1:2375", "DEVENV_ENGINE_HOST": "10.9.8.7"}  # a tunnel to a remote engine
    assert engine.resolve(env).address == "10.9.8.7"
    assert engine.resolve({"DOCKER_HOST": "ssh://me@box.example", "DEVENV_ENGINE_HOST": "box.lan"}).address == "box.lan"


def test_a_docker_context_names_the_engine(tmp_path: Path) -> None:
    import hashlib
    import json

    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"shared").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Endpoints": {"docker": {"Host": "tcp://10.213.47.2:2375"}}}))
    target = engine.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "shared"})
    assert (target.url, target.address, target.context) == ("tcp://10.213.47.2:2375", "10.213.47.2", "shared")


# -- .env points at the engine's host ----------------------------------------------------------------------------
def test_env_written_for_a_remote_engine_points_at_its_host(example: Project) -> None:
    result = ensure_env(example, {}, host="10.213.47.2")
    values = result.files.current.values() if result.files.current else {}
    assert "@10.213.47.2:5432/" in values["DATABASE_URL"] and "@10.213.47.2:6379/" in values["REDIS_URL"]
    assert "127.0.0.1" not in values["DATABASE_URL"]


def test_a_loopback_url_is_drift_on_a_remote_engine_rewritten_when_ours_warned_when_the_users(
    example: Project,
) -> None:
    local = ensure_env(example, {})  # written for a local engine: 127.0.0.1
    ours = written_marks(local.values)
    remote = HostPorts(5432, 6379, "10.213.47.2")
    files = read_env_files(example)
    wrong = {entry.key: value for entry, value in port_mismatches(files, remote)}
    assert set(wrong) >= {"DATABASE_URL", "REDIS_URL"} and "@10.213.47.2:5432/" in wrong["DATABASE_URL"]
    assert port_mismatches(files, HostPorts(5432, 6379)) == []  # a local engine: in step
    synced = sync_ports(example, files, remote, {k: v for k, v in ours.items() if k != "REDIS_URL"})
    assert "DATABASE_URL" in synced.updated and "REDIS_URL" not in synced.updated
    assert any("REDIS_URL" in w and "10.213.47.2:6379" in w for w in synced.warnings)
    text = example.env_file.read_text()
    assert "@10.213.47.2:5432/" in text and "@127.0.0.1:6379/" in text  # the user's value is left alone


def test_a_url_to_another_host_is_the_users_choice(example: Project) -> None:
    ensure_env(example, {})
    env = example.env_file.read_text().replace("@127.0.0.1:5432/", "@db.internal:5432/")
    example.env_file.write_text(env)
    keys = [e.key for e, _ in port_mismatches(read_env_files(example), HostPorts(5432, 6379, "10.213.47.2"))]
    assert "DATABASE_URL" not in keys


def test_reset_refuses_a_loopback_database_url_when_the_engine_is_remote(example: Project) -> None:
    ensure_env(example, {})  # DATABASE_URL at 127.0.0.1:5432
    ctx = context_of(load_project(example.root, environ={}), runtime=FakeRuntime(address="10.213.47.2"))
    with pytest.raises(NotOurDatabase) as err:
        check_database_url(ctx, "10.213.47.2", 5432)
    assert "loopback" in err.value.message and "10.213.47.2" in err.value.message
    assert "drop" not in (err.value.hint or "").lower()
    check_database_url(context_of(load_project(example.root, environ={})), "127.0.0.1", 5432)  # local: ours


# -- whose stack it is ---------------------------------------------------------------------------------------------
def test_the_same_path_on_another_machine_is_another_checkout(tmp_path: Path) -> None:
    runtime = FakeRuntime(states=[labelled(tmp_path, OTHER)])
    claim = checkouts.claim_name(runtime, "quotes", tmp_path, pinned=False)
    assert claim.name != "quotes" and claim.name == checkouts.suffixed("quotes", tmp_path, machine=ME)
    assert "box-b (01234567)" in claim.note
    with pytest.raises(checkouts.ForeignStack) as err:
        checkouts.claim_name(runtime, "quotes", tmp_path, pinned=True)
    assert "another machine's stack" in err.value.message and "box-b (01234567)" in err.value.message
    assert "--gone" not in (err.value.hint or "") and "--volumes" not in (err.value.hint or "")
    for action in ("stops or removes", "drops the volumes of"):
        with pytest.raises(checkouts.ForeignStack, match="another machine"):
            checkouts.guard(runtime, "quotes", tmp_path, action)
    checkouts.guard(FakeRuntime(states=[labelled(tmp_path, ME)]), "quotes", tmp_path, "stops")  # ours


def test_a_stack_labelled_before_machines_were_stays_this_checkouts(tmp_path: Path) -> None:
    s = state("postgres")
    legacy = type(s)(**{**s.__dict__, "labels": {"devenv.project": "quotes", "devenv.checkout": str(tmp_path)}})
    assert checkouts.claim_name(FakeRuntime(states=[legacy]), "quotes", tmp_path, pinned=True).name == "quotes"


def test_down_gone_considers_only_this_machines_stopped_stacks(tmp_path: Path) -> None:
    gone = str(tmp_path / "deleted")
    here = {"devenv.checkout": gone, "devenv.machine": ME}
    stacks = [
        LabelledStack("mine-stopped", "", 2, 2, 1, here, 0),
        LabelledStack("mine-running", "", 2, 2, 1, here, 2),
        LabelledStack("other-machine", "", 2, 2, 1, {"devenv.checkout": gone, "devenv.machine": OTHER}, 0),
        LabelledStack("unlabelled-machine", "", 0, 2, 0, {"devenv.checkout": gone}),
    ]
    runtime = FakeRuntime(stacks=stacks)
    infos = {i.name: i for i in checkouts.list_stacks(runtime)}
    assert infos["other-machine"].here is False and infos["other-machine"].gone is False
    assert infos["unlabelled-machine"].gone is False
    assert [s.name for s in checkouts.gone_stacks(runtime)] == ["mine-stopped"]
    assert [s.name for s in checkouts.gone_stacks(runtime, running=True)] == ["mine-stopped", "mine-running"]
    forged = [*checkouts.gone_stacks(runtime), infos["other-machine"]]
    assert [s.name for s in checkouts.remove_gone(runtime, forged)] == ["mine-stopped"]
    assert runtime.calls == [("remove", ("mine-stopped",))]


def test_the_cluster_mark_names_the_machine() -> None:
    cluster = FakeCluster(databases={"postgres": cluster_mark("quotes", "/work/a", OTHER)})
    conn = FakeSession(cluster, "postgres")
    verify_cluster(conn, "quotes", "/work/a", "h:5432", machine=OTHER)  # type: ignore[arg-type]
    with pytest.raises(NotOurDatabase, match="on the machine 01234567"):
        verify_cluster(conn, "quotes", "/work/a", "h:5432", machine=ME)  # type: ignore[arg-type]
    cluster.databases["postgres"] = cluster_mark("quotes", "/work/a")  # written before machines were marked
    verify_cluster(conn, "quotes", "/work/a", "h:5432", machine=ME)  # type: ignore[arg-type]


def test_the_machine_id_is_made_once_and_kept(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    machine._cached.cache_clear()
    ids: list[str] = []
    threads = [
        threading.Thread(target=lambda: ids.append(machine._read_or_create(tmp_path / "devenv" / "x")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids[0]) == 32
    first = machine.this_machine(env)
    machine._cached.cache_clear()
    assert machine.this_machine(env).id == first.id == (tmp_path / "devenv" / "machine-id").read_text().strip()
    machine._cached.cache_clear()
    assert machine.this_machine({"XDG_STATE_HOME": str(tmp_path / "elsewhere")}).id != first.id


# -- ports on the engine's host --------------------------------------------------------------------------------
def test_engine_ports_never_pick_a_held_one() -> None:
    held = set(range(49152, 65536)) - {50001, 50002}
    space = EnginePorts("10.213.47.2", lambda: held, lambda port: False)
    assert {space.free_port(), space.free_port()} == {50001, 50002}
    assert not space.is_free(49152) and space.is_free(5432)


def test_a_port_a_process_on_the_engines_host_holds_is_not_free() -> None:
    import socket

    with socket.socket() as listener:  # a process on "the engine's host" (loopback here) that no container list shows
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        space = EnginePorts("127.0.0.1", set, lambda p: answers_at("127.0.0.1", p))
        assert not space.is_free(port)
    assert space.is_free(port)  # closed: refused, so free


def test_a_remote_default_port_held_by_a_host_process_falls_back(example: Project) -> None:
    (example.root / "devenv.toml").write_text('bind_address = "0.0.0.0"\n')
    project = load_project(example.root, environ={})
    runtime = FakeRuntime(states=[state("postgres", health="healthy")], address="10.213.47.2", host_listening={5432})
    result = up(context_of(project, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    assert "host port 5432 is taken (by a process on 10.213.47.2, not a container)" in " ".join(result.notes)
    assert envfile.read_env(project)["POSTGRES_PORT"] != "5432"


def test_a_remote_engines_taken_default_port_falls_back_and_a_pinned_one_fails_fast(
    example: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    (example.root / "devenv.toml").write_text('bind_address = "0.0.0.0"\n')
    project = load_project(example.root, environ={})
    held_by_other = labelled("/work/other", OTHER, service="postgres")
    runtime = FakeRuntime(states=[state("postgres", health="healthy")], address="10.213.47.2", engine_held={5432})
    runtime.port_holders = lambda port: [("quotes-postgres-1", dict(held_by_other.labels))] if port == 5432 else []  # type: ignore[method-assign]
    result = up(context_of(project, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    note = " ".join(result.notes)
    assert "host port 5432 is taken" in note and "on the machine box-b (01234567)" in note
    monkeypatch.setenv("DEVENV_POSTGRES_PORT", "5432")
    pinned = load_project(example.root)
    runtime = FakeRuntime(states=[], address="10.213.47.2", engine_held={5432})
    runtime.port_holders = lambda port: [("quotes-postgres-1", dict(held_by_other.labels))]  # type: ignore[method-assign]
    with pytest.raises(PortInUse) as err:
        up(context_of(pinned, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    assert "on the Docker Engine's host 10.213.47.2" in err.value.message and "/work/other" in err.value.message
    assert not [c for c in runtime.calls if c[0] == "up"]


@pytest.mark.parametrize(
    "output",
    [
        "Error response from daemon: driver failed programming external connectivity on endpoint q-postgres-1: "
        "Bind for 0.0.0.0:5432 failed: port is already allocated",
        "Error response from daemon: failed to bind host port for 0.0.0.0:6379:172.18.0.2:6379/tcp: address "
        "already in use",
        "Error starting userland proxy: listen tcp4 0.0.0.0:3000: bind: address already in use",
    ],
)
def test_composes_port_clash_is_a_port_in_use_error(output: str) -> None:
    err = checkouts.port_clash(FakeRuntime(address="10.213.47.2"), output)
    assert err is not None and "already in use on 10.213.47.2" in err.message and err.hint
    assert checkouts.port_clash(FakeRuntime(), "pull access denied") is None


def test_gc_takes_only_this_machines_ci_stacks() -> None:
    from datetime import timedelta

    from devenv.commands.ci import gc

    old = "2020-01-01T00:00:00Z"
    stacks = [
        LabelledStack("ci-mine", old, 1, 1, 1, {"devenv.ci": "true", "devenv.machine": ME}),
        LabelledStack("ci-theirs", old, 1, 1, 1, {"devenv.ci": "true", "devenv.machine": OTHER}),
        LabelledStack("ci-legacy", old, 1, 1, 1, {"devenv.ci": "true"}),
    ]
    runtime = FakeRuntime(stacks=stacks)
    removed = gc(runtime, timedelta(hours=1), dry_run=False)
    assert sorted(s.name for s in removed) == ["ci-legacy", "ci-mine"]
    assert ("remove", ("ci-theirs",)) not in runtime.calls
