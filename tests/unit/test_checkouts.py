"""Many checkouts, one engine: names, ports, refusals and `ls`, with a fake runtime whose containers carry labels."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.commands.lifecycle import up
from devenv.core.errors import NotOurDatabase, PortInUse
from devenv.core.state import read_record
from devenv.db.marks import cluster_mark, verify_cluster
from devenv.engine.runtime import LabelledStack
from devenv.project.discovery import Project, load_project
from devenv.stack import checkouts
from tests.fakes import FakeCluster, FakeConnectors, FakeRuntime, FakeSession, state
from tests.fixtures.helpers import context_of


def owned_by(  # type: ignore[no-untyped-def]
    path: str | Path, service: str = "postgres", ports: dict[int, int] | None = None, machine: str = "this-machine-id"
):
    s = state(service, ports=ports)
    labels = {"devenv.project": "quotes", "devenv.checkout": str(path), "devenv.machine": machine}
    return type(s)(**{**s.__dict__, "labels": labels})


def test_a_name_held_by_another_checkout_gets_a_stable_name_of_its_own(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    mine = tmp_path / "mine"
    runtime = FakeRuntime(states=[owned_by(other)])
    claim = checkouts.claim_name(runtime, "quotes", mine, pinned=False)
    assert claim.name == checkouts.suffixed("quotes", mine, machine="this-machine-id")
    assert claim.name.startswith("quotes-")
    assert claim.name == checkouts.claim_name(runtime, "quotes", mine, pinned=False).name  # stable
    assert str(other) in claim.note and claim.name in claim.note
    assert checkouts.suffixed("quotes", mine) != checkouts.suffixed("quotes", other)


def test_own_and_unlabelled_stacks_keep_their_name(tmp_path: Path) -> None:
    assert checkouts.claim_name(FakeRuntime(states=[owned_by(tmp_path)]), "quotes", tmp_path, pinned=False).name == (
        "quotes"
    )
    assert checkouts.claim_name(FakeRuntime(states=[state("postgres")]), "quotes", tmp_path, pinned=False).name == (
        "quotes"  # made before devenv labelled checkouts: it stays with whoever uses it
    )
    volumes_only = FakeRuntime(volume_labels=[{"devenv.project": "quotes", "devenv.checkout": str(tmp_path / "x")}])
    assert checkouts.claim_name(volumes_only, "quotes", tmp_path, pinned=False).name != "quotes"  # after `down`


def test_a_pinned_name_held_by_another_checkout_is_refused_without_a_hint_to_drop_data(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(checkouts.ForeignStack) as err:
        checkouts.claim_name(FakeRuntime(states=[owned_by(other)]), "quotes", tmp_path / "me", pinned=True)
    assert str(other) in err.value.message and "DEVENV_PROJECT_NAME" in (err.value.hint or "")
    assert "reset --hard" not in (err.value.hint or "") and "--volumes" not in (err.value.hint or "")
    with pytest.raises(checkouts.ForeignStack, match="no longer exists") as gone:
        checkouts.guard(FakeRuntime(states=[owned_by(tmp_path / "deleted")]), "quotes", tmp_path / "me", "stops")
    assert "devenv down --gone" in (gone.value.hint or "")


def test_reset_refuses_a_postgres_marked_by_another_checkout() -> None:
    cluster = FakeCluster(databases={"postgres": cluster_mark("quotes", "/work/a")})
    conn = FakeSession(cluster, "postgres")
    verify_cluster(conn, "quotes", "/work/a", "127.0.0.1:5432")  # type: ignore[arg-type]
    with pytest.raises(NotOurDatabase, match="the checkout /work/a, not this one's"):
        verify_cluster(conn, "quotes", "/work/b", "127.0.0.1:5432")  # type: ignore[arg-type]
    cluster.databases["postgres"] = "devenv-project:quotes"  # written before checkouts were marked: still ours
    verify_cluster(conn, "quotes", "/work/b", "127.0.0.1:5432")  # type: ignore[arg-type]


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_default_port_that_is_taken_falls_back_and_is_kept(example: Project, taken: int) -> None:
    (example.root / "devenv.toml").write_text("")  # no port pinned
    project = load_project(example.root, environ={})
    # The default is "taken": pretend 5432 is the held port by recording it as this checkout's choice before.
    from devenv.core.state import write_record

    write_record(project.root, ports={"postgres": taken})
    project = load_project(example.root, environ={})
    assert project.config.postgres.port == taken  # what the record says
    runtime = FakeRuntime(states=[state("postgres", health="healthy")])  # compose started it
    result = up(context_of(project, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    chosen = read_record(project.root)["ports"]["postgres"]
    assert chosen != taken and result.notes and f"host port {taken} is taken" in " ".join(result.notes)
    assert load_project(example.root, environ={}).config.postgres.port == chosen  # kept for the next command


def test_a_pinned_port_that_is_taken_fails_fast_naming_the_holder(
    example: Project, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVENV_POSTGRES_PORT", str(taken))
    project = load_project(example.root)
    holder = owned_by("/work/other", ports={5432: taken})
    runtime = FakeRuntime(states=[])
    runtime.port_holders = lambda port: [("quotes-postgres-1", dict(holder.labels))]  # type: ignore[method-assign]
    with pytest.raises(PortInUse) as err:
        up(context_of(project, runtime=runtime, connectors=FakeConnectors()), ["postgres"])
    assert f"host port {taken} for postgres" in err.value.message
    assert "the devenv stack 'quotes' of /work/other" in err.value.message
    assert "DEVENV_POSTGRES_PORT" in (err.value.hint or "")
    assert not [c for c in runtime.calls if c[0] == "up"]


def test_ls_tells_running_stacks_from_those_of_deleted_checkouts(tmp_path: Path) -> None:
    here = {"devenv.machine": "this-machine-id"}
    alive = LabelledStack(
        "a",
        "2026-12-01T10:00:00Z",
        4,
        2,
        1,
        {"devenv.checkout": str(tmp_path), **here},
        3,
        1,
        {"postgres": 5432},
        1000,
    )
    gone = LabelledStack("b", "", 0, 2, 0, {"devenv.checkout": str(tmp_path / "deleted"), **here})
    old = LabelledStack("c", "", 0, 1, 0, {})
    runtime = FakeRuntime(stacks=[alive, gone, old])
    infos = {i.name: i for i in checkouts.list_stacks(runtime)}
    assert (infos["a"].state, infos["a"].gone) == ("running", False)
    assert (infos["b"].state, infos["b"].gone) == ("volumes only", True)
    assert infos["c"].gone is False  # no checkout label: never "gone", never removed by --gone
    assert [s.name for s in checkouts.gone_stacks(runtime)] == ["b"]
    removed = checkouts.remove_gone(runtime, checkouts.gone_stacks(runtime))
    assert [s.name for s in removed] == ["b"] and runtime.calls == [("remove", ("b",))]
    assert runtime.images_removed == [("b", str(tmp_path / "deleted"))]  # its server image, by its labels
    assert os.path.exists(tmp_path)
