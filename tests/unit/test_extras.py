"""Extra services ([services.NAME]): the schema (good and bad tables), the stack's plan, rendering, readiness probes,
the URLs `ci up` exports, and what `devenv init` proposes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
import yaml

from devenv.commands.ci import CiStack, ci_project
from devenv.commands.init import init
from devenv.core.errors import ConfigError, ServiceNotReady, UsageError
from devenv.engine.runtime import ContainerState
from devenv.project.config import load_config
from devenv.project.discovery import load_project
from devenv.project.extras import PortSpec, Readiness, VolumeSpec, urls
from devenv.project.services import expand_services
from devenv.stack.probes import HealthProbe, SettleProbe, StateCache, TcpProbe
from devenv.stack.render import render_compose, service_environment
from tests.fakes import FakeRuntime, state
from tests.fixtures.helpers import context_of, copy_project

GOOD = """\
[services.worker]
from = "server"
command = "npm run start:worker"

[services.mail]
image = "axllent/mailpit:v1.20"
ports = ["8025:8025", "0:1025"]
ready = "http:/livez"
volumes = ["mailpit-data:/data", "./fixtures:/fixtures:ro"]
depends_on = ["postgres"]

[services.mail.environment]
MP_MAX = 10
APP_DB = "${DATABASE_URL}"
PRICE = "$$5"

[services.storage]
image = "minio/minio"
ports = [9000]
healthcheck = ["mc", "ready", "local"]
depends_on = ["mail"]
"""


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devenv.toml"
    path.write_text(text)
    return path


def _project(tmp_path: Path, text: str) -> Path:
    root = copy_project("example", tmp_path / "p")
    (root / "devenv.toml").write_text(text)
    return root


def test_good_tables_load_with_their_defaults(tmp_path: Path) -> None:
    services = {s.name: s for s in load_config(_config(tmp_path, GOOD), {}).services}
    assert list(services) == ["worker", "mail", "storage"]  # file order
    worker, mail, storage = services["worker"], services["mail"], services["storage"]
    assert worker.from_server and worker.command == ("npm", "run", "start:worker") and worker.depends_on is None
    assert worker.ready == Readiness("none")
    assert mail.ports == (PortSpec(8025, 8025), PortSpec(0, 1025)) and mail.ready == Readiness("http", 8025, "/livez")
    assert mail.volumes == (
        VolumeSpec("mailpit-data", "/data"),
        VolumeSpec("fixtures", "/fixtures", read_only=True, named=False),
    )
    assert mail.environment == {"MP_MAX": "10", "APP_DB": "${DATABASE_URL}", "PRICE": "$$5"}
    assert storage.ready == Readiness("health") and storage.healthcheck == ("CMD", "mc", "ready", "local")
    assert storage.url_variable == "STORAGE_URL" and mail.env_file == "service-mail.env"


def test_tcp_is_the_default_readiness_of_a_service_with_a_port(tmp_path: Path) -> None:
    (svc,) = load_config(_config(tmp_path, '[services.smtp]\nimage = "smtp:1"\nports = [1025]\n'), {}).services
    assert svc.ready == Readiness("tcp", 1025)


@pytest.mark.parametrize(
    ("table", "line", "message", "hint"),
    [
        ('[services.mail]\nimge = "x:1"\n', 2, "services.mail.imge is not a devenv.toml key", "'services.mail.image'"),
        ('[services.mail]\nimage = "x:1"\nenv = {A = "1"}\n', 3, "services.mail.env is not", "environment"),
        ("[services.mail]\nports = [1]\n", 1, "needs exactly one of `from` and `image`", 'from = "server"'),
        ('[services.w]\nfrom = "server"\nimage = "x:1"\n', 1, "has both `from` and `image`", "image"),
        ('[services.w]\nfrom = "api"\n', 2, "only the server's image can be reused", 'from = "server"'),
        ('[services.mail]\nimage = "Bad Image"\n', 2, "is not a valid image reference", "registry"),
        ('[services.mail]\nimage = "x:1"\nports = ["99999:1"]\n', 3, "= 99999 is out of range", "0 lets Docker"),
        ('[services.mail]\nimage = "x:1"\nports = ["a:b:c:d"]\n', 3, "not a port", "HOST:CONTAINER"),
        ('[services.mail]\nimage = "x:1"\nports = [25]\nready = "tcp:26"\n', 4, "port 26 is not in `ports`", "ports"),
        ('[services.mail]\nimage = "x:1"\nready = "http:/"\n', 3, "needs a port to ask", "ports"),
        ('[services.mail]\nimage = "x:1"\nready = "grpc"\n', 3, "is not a readiness check", "tcp:PORT"),
        ('[services.mail]\nimage = "x:1"\ndepends_on = ["postgress"]\n', 3, "'postgress', which is not", "'postgres'"),
        ('[services.mail]\nimage = "x:1"\ndepends_on = ["mail"]\n', 3, "names mail itself", "itself"),
        ('[services.mail]\nimage = "x:1"\ndepends_on = "postgres"\n', 3, "must be a list", "postgres"),
        ('[services.mail]\nimage = "x:1"\nvolumes = ["pgdata:/data"]\n', 3, "the stack's own data volume", "name"),
        ('[services.mail]\nimage = "x:1"\nvolumes = ["../up:/data"]\n', 3, "leaves the project", "inside"),
        ('[services.mail]\nimage = "x:1"\nvolumes = ["data"]\n', 3, "not SOURCE:TARGET", "TARGET"),
        ('[services.mail]\nimage = "x:1"\nenvironment = {"A-B" = "1"}\n', 3, "is not a variable name", "letters"),
        ('[services.server]\nimage = "x:1"\n', 1, "one of devenv's own services", "another name"),
        ('[services.Mail]\nimage = "x:1"\n', 1, "'Mail' is not a service name", "lowercase"),
        (
            '[services.a]\nimage = "x:1"\ndepends_on = ["b"]\n[services.b]\nimage = "x:1"\ndepends_on = ["a"]\n',
            3,
            "makes a cycle (a -> b -> a)",
            "drop one",
        ),
        (
            '[postgres]\nport = 8025\n[services.mail]\nimage = "x:1"\nports = [8025]\n',
            2,
            "both publish host port 8025",
            "services.mail.ports",
        ),
    ],
)
def test_bad_tables_fail_at_load_naming_the_line(
    tmp_path: Path, table: str, line: int, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, table), {})
    err = caught.value
    assert f"devenv.toml:{line}:" in err.message and message in err.message, err.message
    assert hint in (err.hint or ""), err.hint


def test_the_stack_plans_extras_after_its_own_and_up_expands_their_dependencies(tmp_path: Path) -> None:
    ctx = context_of(load_project(_project(tmp_path, GOOD), environ={}))
    assert ctx.stack.services == ("postgres", "redis", "migrate", "server", "worker", "mail", "storage")
    assert ctx.stack.long_running()[-3:] == ("worker", "mail", "storage")
    assert expand_services(["worker"], ctx.stack) == ["postgres", "redis", "migrate", "worker"]
    assert expand_services(["storage"], ctx.stack) == ["postgres", "mail", "storage"]
    assert ctx.stack.uses_server_image(["postgres", "worker"]) and not ctx.stack.uses_server_image(["mail"])
    with pytest.raises(UsageError, match="did you mean 'mail'"):
        expand_services(["mial"], ctx.stack)


def test_a_worker_from_the_server_needs_a_server_image(tmp_path: Path) -> None:
    root = _project(tmp_path, '[services.worker]\nfrom = "server"\n')
    (root / "apps" / "server" / "Dockerfile").unlink()
    with pytest.raises(ConfigError, match=r"devenv.toml:2: services.worker.from = \"server\": this project's stack"):
        _ = context_of(load_project(root, environ={})).stack


def test_a_worker_from_the_server_in_host_mode_names_the_variable_that_chose_it(tmp_path: Path) -> None:
    root = _project(tmp_path, '[services.worker]\nfrom = "server"\n')
    with pytest.raises(ConfigError, match=r"DEVENV_SERVER_MODE \(overrides server.mode\) = host") as caught:
        _ = context_of(load_project(root, environ={"DEVENV_SERVER_MODE": "host"})).stack
    assert "server.mode = container" in (caught.value.hint or "")  # the Dockerfile is there: not "add one"


def test_depends_on_redis_without_redis_in_the_stack_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path, '[redis]\nenabled = false\n[services.mail]\nimage = "x:1"\ndepends_on = ["redis"]\n')
    with pytest.raises(ConfigError, match="names redis, which this project's stack has not") as caught:
        _ = context_of(load_project(root, environ={})).stack
    assert "enabled = true" in (caught.value.hint or "")


def test_rendering_extras_keeps_secrets_out_and_interpolates_in_network_values(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, GOOD), environ={})
    ctx = context_of(project)
    data = yaml.safe_load(render_compose(ctx))
    svc = data["services"]
    assert svc["worker"]["image"] == svc["server"]["image"] and svc["worker"]["pull_policy"] == "never"
    assert svc["worker"]["env_file"] == svc["server"]["env_file"] and svc["worker"]["init"] is True
    assert svc["worker"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert svc["mail"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert svc["storage"]["depends_on"] == {"mail": {"condition": "service_started"}}  # mail has no healthcheck
    assert svc["storage"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert svc["mail"]["ports"] == ["127.0.0.1:8025:8025", "127.0.0.1::1025"]
    assert data["volumes"]["mailpit-data"]["labels"]["devenv.project"] == project.name
    assert "server" not in svc["mail"]["env_file"][0] and "APP_DB" not in render_compose(ctx)
    env = service_environment(project, ctx.settings, ctx.stack, ctx.files)["service-mail.env"]
    assert env["APP_DB"].startswith("postgresql://") and "@postgres:5432/" in env["APP_DB"]  # the in-network URL
    assert env["PRICE"] == "$5" and env["MP_MAX"] == "10"


def test_an_unknown_variable_in_environment_names_its_line(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, '[services.mail]\nimage = "x:1"\nenvironment = {A = "${NOPE}"}\n'), {})
    ctx = context_of(project)
    with pytest.raises(ConfigError, match=r"devenv.toml:3: services.mail.environment.A uses \$\{NOPE\}"):
        service_environment(project, ctx.settings, ctx.stack, ctx.files)


def test_ci_stacks_let_docker_pick_every_extra_port_and_export_name_url(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, GOOD), environ={})
    ci = ci_project(project, "ci-1")
    assert {p.host for e in ci.config.services for p in e.ports} == {0}
    found = urls(ci.config.services, {"mail": {8025: 41000, 1025: 41001}, "storage": {9000: 41002}}, "127.0.0.1")
    assert found == {"mail": "http://127.0.0.1:41000", "storage": "tcp://127.0.0.1:41002"}  # worker: no port
    stack = CiStack("ci-1", "postgresql://x", "", "", 1.0, {"MAIL_URL": found["mail"]})
    assert stack.variables()["MAIL_URL"] == "http://127.0.0.1:41000"


def _listener(close_at_once: bool) -> tuple[socket.socket, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        conn, _ = sock.accept()
        if close_at_once:
            conn.close()  # what Docker's port proxy does while nothing listens in the container
        else:
            conn.recv(1)  # keep it open until the client hangs up
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


@pytest.mark.parametrize(("close_at_once", "ready"), [(True, False), (False, True)])
def test_tcp_probe_tells_a_listener_from_a_proxy_that_hangs_up(close_at_once: bool, ready: bool) -> None:
    sock, thread = _listener(close_at_once)
    with sock:
        assert TcpProbe("mail", "127.0.0.1", sock.getsockname()[1]).check() is ready
        thread.join(timeout=2)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert TcpProbe("mail", "127.0.0.1", port).check() is False  # refused: not yet


def test_health_probe_waits_for_healthy() -> None:
    runtime = FakeRuntime(states=[state("storage", health="starting")])
    probe = HealthProbe("storage", StateCache(runtime, max_age=0))
    assert probe.check() is False
    runtime.states = [state("storage", health="healthy")]
    assert probe.check() is True


def test_settle_probe_needs_the_container_up_for_the_settle_time_without_restarts() -> None:
    now = [100.0]
    runtime = FakeRuntime(states=[state("worker", status="created")])
    probe = SettleProbe("worker", runtime, StateCache(runtime, max_age=0), settle=1.0, clock=lambda: now[0])
    assert probe.check() is False  # not running yet
    runtime.states = [state("worker")]
    assert probe.check() is False  # running: the clock starts
    now[0] += 0.5
    assert probe.check() is False
    now[0] += 0.6
    assert probe.check() is True


def test_settle_probe_sees_a_restart_the_engines_list_does_not_show() -> None:
    class Restarted(FakeRuntime):
        def containers(self, *, detail: bool = True) -> list[ContainerState]:
            return [state("worker", restarts=1 if detail else 0)]  # the list says running, inspect says restarted

    runtime = Restarted(log_text="worker: cannot reach the queue")
    probe = SettleProbe("worker", runtime, StateCache(runtime, max_age=0), settle=1.0)
    with pytest.raises(ServiceNotReady, match="worker is crash-looping") as caught:
        probe.check()
    assert "worker: cannot reach the queue" in (caught.value.details or "")


def test_settle_probe_ignores_restarts_from_before_this_up() -> None:
    runtime = FakeRuntime(states=[state("worker", restarts=2)])  # restarted yesterday; this up left it alone
    cache = StateCache(runtime, max_age=0)
    probe = SettleProbe("worker", runtime, cache, settle=0.0, existing=frozenset({"id-worker"}))
    assert probe.check() is False and probe.check() is True
    runtime.states = [state("worker", restarts=3)]
    with pytest.raises(ServiceNotReady, match="crash-looping"):
        probe.check()  # but a restart while up waits is one


def test_init_proposes_the_worker_script_and_the_compose_mail_service(tmp_path: Path) -> None:
    root = copy_project("apps-api", tmp_path / "shop")
    result = init(context_of(load_project(root, environ={})))
    config = load_config(result.path, {})
    services = {s.name: s for s in config.services}
    assert services["worker"].from_server and services["worker"].command == ("npm", "run", "start:worker")
    assert services["mail"].image == "axllent/mailpit" and services["mail"].ready == Readiness("http", 8025, "/livez")
    assert any("proposed as [services.worker]" in f for f in result.findings)


def test_status_reports_each_extra_service_and_a_dead_one_degrades_the_stack(tmp_path: Path) -> None:
    from devenv.commands.status import stack_status
    from devenv.project.envfile import ensure_env
    from tests.fakes import FakeConnectors

    project = load_project(_project(tmp_path, GOOD), environ={})
    ensure_env(project, {})
    runtime = FakeRuntime(
        states=[
            state("postgres"),
            state("redis"),
            state("server"),
            state("worker"),
            state("mail", ports={8025: 41000}),
            state("storage", "exited", exit_code=1),
        ]
    )
    report = stack_status(context_of(project, runtime=runtime, connectors=FakeConnectors()))
    assert report.checks["worker"].status == "up"  # ready = "none": running is ready
    assert report.checks["mail"].status == "up"  # GET /livez on its published port answered 200
    assert report.checks["storage"].status == "down" and report.checks["storage"].container == "exited (1)"
    assert report.status == "degraded"  # only postgres or the server down makes the stack unhealthy


def test_doctor_checks_the_extra_services_host_ports(tmp_path: Path, held_port: int) -> None:
    from devenv.commands.doctor import check_ports

    text = f'[services.mail]\nimage = "x:1"\nports = ["{held_port}:8025", "0:1025"]\n'
    project = load_project(_project(tmp_path, text), environ={})
    found = [f for f in check_ports(project, FakeRuntime()) if f.check == "port mail"]
    assert [f.level for f in found] == ["fail", "ok"]
    assert "services.mail.ports" in (found[0].hint or "") and found[1].detail == "chosen by Docker"


def test_doctor_checks_the_extra_services_images(tmp_path: Path) -> None:
    from devenv.commands.doctor import check_images
    from devenv.engine.runtime import EngineFacts

    project = load_project(_project(tmp_path, GOOD), environ={})
    facts = EngineFacts("unix:///var/run/docker.sock", "26.1.5", "2.26.1", "/x", frozenset({"minio/minio:latest"}))
    found = {f.check: f for f in check_images(project, facts)}
    assert found["image minio/minio"].level == "ok"
    assert found["image axllent/mailpit:v1.20"].level == "warn"
    assert "services.mail.image" in found["image axllent/mailpit:v1.20"].detail


def test_up_starts_extras_waits_for_their_readiness_and_reports_their_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devenv.commands.lifecycle import up
    from devenv.project import extras
    from tests.fakes import FakeConnectors

    monkeypatch.setattr(extras, "SETTLE_SECONDS", 0.05)
    text = '[services.worker]\nfrom = "server"\ncommand = "npm run start:worker"\n' + (
        '[services.mail]\nimage = "x:1"\nports = ["0:8025"]\nready = "http:/livez"\n'
    )
    project = load_project(_project(tmp_path, text), environ={"DEVENV_POSTGRES_PORT": "0", "DEVENV_REDIS_PORT": "0"})
    runtime = FakeRuntime(
        states=[
            state("postgres", health="healthy", ports={5432: 49001}),
            state("redis", health="healthy", ports={6379: 49002}),
            state("migrate", "exited"),
            state("server", health="healthy", ports={3000: 3000}),
            state("worker"),
            state("mail", ports={8025: 49010}),
        ]
    )
    fakes = FakeConnectors()
    result = up(context_of(project, runtime=runtime, connectors=fakes), ["worker", "mail"])
    assert ("build", (("server",),)) in runtime.calls  # the worker runs the server's image
    assert ("up", (("postgres", "redis", "migrate", "worker", "mail"), False)) in runtime.calls
    assert ("server", "http://127.0.0.1:49010", 0) in fakes.seen  # GET /livez on the published port
    reports = {r.service: r for r in result.services}
    assert reports["mail"].url == "http://127.0.0.1:49010" and reports["mail"].state == "ready"
    assert reports["worker"].url == "-" and reports["worker"].seconds is not None
