"""Benchmarks: devenv against its baselines, in the same run, on the same machine (`make bench`).

Every number is a median of N runs (default 5) of a whole command, CLI start included, with images present.
Each case prints devenv's time, the baseline's and the ratio next to the target from its issue.

    python scripts/bench.py [--runs N] [--only CASE ...]

Cases: help, pg_redis, full_up, warm, reset, ci_parallel, dev_host, watch, db, db_cache, db_clones, remote (a second
engine, scripts/remote-engine.sh); opt-in (only with --only): big_db (a 1 GB seed, slow), layout (--help, warm up
and status against the tree at DEVENV_BENCH_BEFORE, interleaved).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "monorepo"
DEVENV = [sys.executable, "-m", "devenv"]
ROWS: list[tuple[str, float, str, float, str, str]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(
    argv: list[str], env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=cwd)
    if check and done.returncode != 0:
        sys.exit(f"bench: `{' '.join(argv)}` failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def cpu_busy() -> float | None:
    """CPU-seconds the whole machine has spent busy so far (Linux /proc/stat), or None elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def record(case: str, devenv_s: float, baseline: str, baseline_s: float, target: str, verdict: str) -> None:
    ROWS.append((case, devenv_s, baseline, baseline_s, target, verdict))
    print(f"  {case}: devenv {devenv_s:.3f} s | {baseline} {baseline_s:.3f} s | {target}: {verdict}", flush=True)


class Project:
    """A copy of the example project with its own stack name and free host ports."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="devenv-bench-"))
        shutil.copytree(
            EXAMPLE, self.dir / "monorepo", ignore=shutil.ignore_patterns("node_modules", ".devenv", ".env")
        )
        self.root = self.dir / "monorepo"
        self.name = f"bench-{uuid.uuid4().hex[:6]}"
        (self.root / "devenv.toml").write_text(f'name = "{self.name}"\n')
        self.env = {k: v for k, v in os.environ.items() if k != "DEVENV_PROJECT_NAME"}
        self.env.update(
            DEVENV_POSTGRES_PORT=str(free_port()),
            DEVENV_REDIS_PORT=str(free_port()),
            DEVENV_SERVER_PORT=str(free_port()),
        )
        # What devenv hands compose itself: the checkout's label and the private folder of the stack's env files,
        # so the baselines run the same compose file under the same labels.
        from devenv.core.state import secrets_dir

        self.env.update(DEVENV_CHECKOUT=str(self.root), DEVENV_SECRETS=str(secrets_dir(self.root / ".devenv")))

    def devenv(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh([*DEVENV, "-C", str(self.root), *args], env=self.env, check=check)

    def down(self) -> None:
        self.devenv("down", "--volumes", "--yes", check=False)

    def down_for_baseline(self) -> None:
        """Down with the volumes (which also deletes the stack's env files), then write the compose file and its env
        files again, untimed, for a baseline that runs plain compose on them."""
        self.down()
        self.devenv("render", "-o", str(self.root / ".devenv" / "compose.yml"))

    def cleanup(self) -> None:
        self.down()
        # The server image is per project name: drop this run's tag (its layers stay in the build cache).
        sh(["docker", "image", "rm", f"{self.name}-server:devenv"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def poll(fn: Callable[[], bool], interval: float = 0.02, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(interval)
    sys.exit("bench: floor poll timed out")


def pg_answers(port: int, user: str, password: str, db: str) -> Callable[[], bool]:
    import psycopg

    def check() -> bool:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=user, password=password, dbname=db, connect_timeout=1
            ) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    return check


def redis_answers(port: int, password: str) -> Callable[[], bool]:
    import redis

    def check() -> bool:
        r = redis.Redis(host="127.0.0.1", port=port, password=password or None, socket_timeout=1)
        try:
            return bool(r.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            r.close()

    return check


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    return check


def env_of(project: Project) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(project.root / "apps" / "server" / ".env").items()}


def compose(project: Project, *args: str) -> list[str]:
    return [
        "docker",
        "compose",
        "-p",
        project.name,
        "-f",
        str(project.root / ".devenv" / "compose.yml"),
        "--project-directory",
        str(project.root / ".devenv"),
        *args,
    ]


# -- cases ---------------------------------------------------------------------------------------------------------


def case_help(runs: int) -> None:
    samples = [timed(lambda: sh([*DEVENV, "--help"])) for _ in range(runs)]
    bare = [timed(lambda: sh([sys.executable, "-c", "pass"])) for _ in range(runs)]
    value, base = median(samples), median(bare)
    ratio = value / base
    record(
        "devenv --help", value, "python -c pass", base, "<= 6x", f"{ratio:.2f}x ({'ok' if ratio <= 6 else 'MISSED'})"
    )


REVIEW_COMPOSE = """
services:
  postgres:
    image: {pg_image}
    environment:
      POSTGRES_USER: coesco
      POSTGRES_PASSWORD: development
      POSTGRES_DB: coesco_dev
    ports: ["127.0.0.1:{pg_port}:5432"]
    volumes: [postgres_data:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U coesco"]
      interval: 10s
      timeout: 5s
      retries: 5
  redis:
    image: {redis_image}
    ports: ["127.0.0.1:{redis_port}:6379"]
    volumes: [redis_data:/data]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 10s
      timeout: 5s
      retries: 5
volumes:
  postgres_data:
  redis_data:
"""


def case_pg_redis(runs: int) -> None:
    """devenv up postgres redis vs the review's compose `up -d --wait` vs the floor (poll SELECT 1 every 20 ms)."""
    p = Project()
    try:
        p.devenv("env")
        p.devenv("render", "-o", str(p.root / ".devenv" / "compose.yml"))
        env = env_of(p)
        pg = pg_answers(
            int(p.env["DEVENV_POSTGRES_PORT"]), env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
        )
        rd = redis_answers(int(p.env["DEVENV_REDIS_PORT"]), env.get("REDIS_PASSWORD", ""))
        devenv_s, floor_s, review_s = [], [], []
        review_file = p.dir / "review-compose.yml"
        review_file.write_text(
            REVIEW_COMPOSE.format(
                pg_image=os.environ.get("DEVENV_POSTGRES_IMAGE", "postgres:16-alpine"),
                redis_image=os.environ.get("DEVENV_REDIS_IMAGE", "redis:7-alpine"),
                pg_port=free_port(),
                redis_port=free_port(),
            )
        )
        review = ["docker", "compose", "-p", f"{p.name}-review", "-f", str(review_file)]
        for _ in range(runs):
            p.down()
            devenv_s.append(timed(lambda: p.devenv("up", "postgres", "redis")))
            p.down_for_baseline()

            def floor() -> None:
                sh(compose(p, "up", "-d", "postgres", "redis"), env=p.env)
                poll(pg)
                poll(rd)

            floor_s.append(timed(floor))
            sh(compose(p, "down", "-v"), env=p.env)
            review_s.append(timed(lambda: sh([*review, "up", "-d", "--wait"])))
            sh([*review, "down", "-v"])
        d, f, r = median(devenv_s), median(floor_s), median(review_s)
        record(
            "up postgres redis",
            d,
            "floor (compose up -d + poll 20 ms)",
            f,
            "<= 1.15x floor",
            f"{d / f:.3f}x floor ({'ok' if d <= 1.15 * f else 'MISSED'})",
        )
        record("up postgres redis", d, "review compose up -d --wait", r, "faster than review", f"{r / d:.1f}x faster")
    finally:
        p.cleanup()


def case_full_up(runs: int) -> None:
    """Full `devenv up` vs the sum of its floors (pg+redis, migrate, seed, server start to ready)."""
    p = Project()
    try:
        p.devenv("up")  # builds the server image once; later runs use the cache
        env = env_of(p)
        pg = pg_answers(
            int(p.env["DEVENV_POSTGRES_PORT"]), env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
        )
        rd = redis_answers(int(p.env["DEVENV_REDIS_PORT"]), env.get("REDIS_PASSWORD", ""))
        ready = http_ok(f"http://127.0.0.1:{p.env['DEVENV_SERVER_PORT']}/health/ready")
        cfg_cmds = {"migrate": ["npx", "prisma", "migrate", "deploy"], "seed": ["npx", "prisma", "db", "seed"]}
        devenv_s, floor_s = [], []
        for _ in range(runs):
            p.down()
            devenv_s.append(timed(lambda: p.devenv("up")))
            p.down_for_baseline()
            t_pg = timed(
                lambda: (sh(compose(p, "up", "-d", "--no-deps", "postgres", "redis"), env=p.env), poll(pg), poll(rd))
            )
            t_mig = timed(
                lambda: sh(compose(p, "run", "--rm", "--no-deps", "-T", "migrate", *cfg_cmds["migrate"]), env=p.env)
            )
            t_seed = timed(
                lambda: sh(compose(p, "run", "--rm", "--no-deps", "-T", "migrate", *cfg_cmds["seed"]), env=p.env)
            )
            t_srv = timed(lambda: (sh(compose(p, "up", "-d", "--no-deps", "server"), env=p.env), poll(ready)))
            floor_s.append(t_pg + t_mig + t_seed + t_srv)
            sh(compose(p, "down", "-v"), env=p.env)
        d, f = median(devenv_s), median(floor_s)
        record("full up", d, "sum of floors", f, "<= 1.2x", f"{d / f:.2f}x ({'ok' if d <= 1.2 * f else 'MISSED'})")
    finally:
        p.cleanup()


LONG_RUNNING = ("postgres", "redis", "server")


def case_warm(runs: int) -> None:
    """Warm `devenv up` (nothing changed) and `devenv status` on a running stack."""
    p = Project()
    try:
        p.devenv("up")
        warm = [timed(lambda: p.devenv("up")) for _ in range(runs)]
        # compose's own no-op: the long-running services of the same running stack, nothing to recreate.
        noop = [timed(lambda: sh(compose(p, "up", "-d", "--no-deps", *LONG_RUNNING), env=p.env)) for _ in range(runs)]
        status = [timed(lambda: p.devenv("status")) for _ in range(runs)]
        ps = [timed(lambda: sh(compose(p, "ps"), env=p.env)) for _ in range(runs)]
        w, n, s, b = median(warm), median(noop), median(status), median(ps)
        record(
            "warm up",
            w,
            "compose up -d --no-deps (no-op)",
            n,
            "faster than compose",
            f"{n / w:.2f}x faster ({'ok' if w < n else 'MISSED'})",
        )
        record("status", s, "docker compose ps", b, "<= 3x", f"{s / b:.2f}x ({'ok' if s <= 3 * b else 'MISSED'})")
    finally:
        p.cleanup()


def case_reset(runs: int) -> None:
    """Soft reset vs hard reset (down -v + up), same run; soft three ways: 1 s apart (the spare is made between
    two resets, as while a test runs), back to back (each waits for the spare the previous one started), and with
    [reset] spare = false (a copy from the template on the reset's own time)."""
    p = Project()
    toml = p.root / "devenv.toml"
    original = toml.read_text()

    def soft_reset() -> float:
        return timed(lambda: p.devenv("reset", "--yes"))

    def apart() -> float:
        time.sleep(1.0)  # the time a test takes between two resets
        return soft_reset()

    try:
        p.devenv("up")
        p.devenv("reset", "--yes")
        soft = [apart() for _ in range(runs)]
        back_to_back = [soft_reset() for _ in range(runs)]
        toml.write_text(original + "\n[reset]\nspare = false\n")
        p.devenv("reset", "--yes")
        copy = [apart() for _ in range(runs)]
        toml.write_text(original)
        hard = [timed(lambda: p.devenv("reset", "--hard", "--yes")) for _ in range(max(3, runs // 2 + 1))]
        s, b, c, h = median(soft), median(back_to_back), median(copy), median(hard)
        for label, samples in (("1 s apart", soft), ("back to back", back_to_back), ("spare = false", copy)):
            print(f"  soft reset samples, {label}: {' '.join(f'{t:.3f}' for t in samples)}", flush=True)
        record(
            "reset (soft)",
            s,
            "reset --hard",
            h,
            "<= 0.3 s and >= 20x faster",
            f"{h / s:.1f}x faster ({'ok' if s <= 0.3 and h / s >= 20 else 'MISSED'})",
        )
        record("reset (soft, back to back)", b, "reset --hard", h, "(shown)", f"{h / b:.1f}x faster")
        record("reset (soft, spare = false)", c, "reset --hard", h, "(shown)", f"{h / c:.1f}x faster")
    finally:
        toml.write_text(original)
        p.cleanup()


def case_ci_parallel(runs: int) -> None:
    """4 `devenv run` at once vs one, each running a command that queries Postgres and Redis."""
    p = Project()
    probe = (
        "import os,psycopg,redis;"
        "psycopg.connect(os.environ['DATABASE_URL'].split('?')[0]).execute('select 1');"
        "redis.Redis.from_url(os.environ['REDIS_URL']).ping()"
    )
    try:
        p.devenv("env")

        def run_one() -> subprocess.Popen[str]:
            return subprocess.Popen(
                [*DEVENV, "-C", str(p.root), "run", "--", sys.executable, "-c", probe],
                env={k: v for k, v in p.env.items() if k != "DEVENV_PROJECT_NAME"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        def single() -> None:
            proc = run_one()
            _out, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"bench: devenv run failed: {err[-2000:]}")

        def four() -> None:
            procs = [run_one() for _ in range(4)]
            for proc in procs:
                _out, err = proc.communicate()
                if proc.returncode != 0:
                    sys.exit(f"bench: parallel devenv run failed: {err[-2000:]}")

        one: list[float] = []
        cpu: list[float] = []
        for _ in range(max(1, runs // 2)):
            before = cpu_busy()
            one.append(timed(single))
            after = cpu_busy()
            if before is not None and after is not None:
                cpu.append(after - before)
        par = [timed(four) for _ in range(max(1, runs // 2))]
        o, f = median(one), median(par)
        record(
            "4 x devenv run at once",
            f,
            "1 x devenv run",
            o,
            "<= 2x single",
            f"{f / o:.2f}x ({'ok' if f <= 2 * o else 'MISSED'})",
        )
        if cpu:
            # Four runs need at least 4 x (one run's CPU-seconds) of CPU; on N cores that takes 4C/N seconds.
            c, cores = median(cpu), os.cpu_count() or 1
            floor = 4 * c / cores / o
            print(
                f"  one run keeps the machine busy for {c:.2f} CPU-s in {o:.2f} s ({c / o:.2f} cores); "
                f"four on {cores} cores cannot finish in less than 4 x {c:.2f} / {cores} = {4 * c / cores:.2f} s "
                f"= {floor:.2f}x one run",
                flush=True,
            )
            ROWS.append(
                ("4 x run: CPU-bound floor", 4 * c / cores, f"{cores} cores", o, "(machine limit)", f"{floor:.2f}x")
            )
    finally:
        p.cleanup()


def _edit_to_served(route: Path, url: str, marker: str, timeout: float = 60) -> float:
    """Rewrite the example's `GET /` to answer MARKER, then poll URL() every 20 ms until it does: seconds."""
    text = route.read_text()
    start = text.index("res.json({ ")
    end = text.index("name:", start)
    route.write_text(text[:start] + f'res.json({{ marker: "{marker}", ' + text[end:])
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if marker.encode() in resp.read():
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"bench: {url} never served {marker}")


def _edits_served(argv: list[str], env: dict[str, str], cwd: Path | None, ready: str, route: Path, url: str,
                  count: int, pause: float, tag: str) -> list[float]:  # fmt: skip
    """Start ARGV (a dev server or watcher), wait for READY in its output, then time COUNT edits of ROUTE until URL
    serves each one; the process group is stopped with SIGINT afterwards, as Ctrl-C would."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_line(proc, ready)
        threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
        samples = []
        for i in range(count):
            samples.append(_edit_to_served(route, url, f"{tag}-{i}-{uuid.uuid4().hex[:4]}"))
            time.sleep(pause)
        return samples
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def _wait_line(proc: subprocess.Popen[str], fragment: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if fragment in line:
            return
        if not line and proc.poll() is not None:
            sys.exit(f"bench: the command ended before {fragment!r}")
    sys.exit(f"bench: {fragment!r} never came")


def case_dev_host(runs: int) -> None:
    """Edit-to-served with the server on the host: `devenv dev` vs the project's own `npm run dev` by hand."""
    p = Project()
    try:
        sh(["npm", "ci", "--no-audit", "--no-fund"], env={**os.environ, **{"npm_config_loglevel": "error"}}, cwd=p.root)
        env = {**p.env, "DEVENV_SERVER_MODE": "host"}
        p.env = env
        p.devenv("up")
        server = p.root / "apps" / "server"
        route, port = server / "src" / "app.js", int(env["DEVENV_SERVER_PORT"])
        url = f"http://127.0.0.1:{port}/"

        dotenv = env_of(p)
        by_hand = {**os.environ, **dotenv, "PORT": str(port)}
        own: list[float] = []
        ours: list[float] = []
        block = max(2, (runs + 1) // 2)
        for _ in range(2):  # A B A B: the machine's drift (other load, caches) falls on both alike
            own += _edits_served(["npm", "run", "dev"], by_hand, server, '"listening"', route, url, block, 0.5, "npm")
            ours += _edits_served([*DEVENV, "-C", str(p.root), "dev"], env, p.root, "devenv: ready at", route, url,
                                  block, 0.5, "dev")  # fmt: skip
        print(f"  edit-to-served samples, npm run dev: {' '.join(f'{t:.2f}' for t in own)}", flush=True)
        print(f"  edit-to-served samples, devenv dev: {' '.join(f'{t:.2f}' for t in ours)}", flush=True)
        d, b = median(ours), median(own)
        record(
            "edit-to-served, host",
            d,
            "npm run dev by hand",
            b,
            "<= 1.3x",
            f"{d / b:.2f}x ({'ok' if d <= 1.3 * b else 'MISSED'})",
        )
    finally:
        p.cleanup()


def case_watch(runs: int) -> None:
    """Edit-to-served with the server in its container: `devenv watch` vs plain `docker compose watch` (the same
    rules: devenv's rendered compose file)."""
    p = Project()
    try:
        p.devenv("up")
        route = p.root / "apps" / "server" / "src" / "app.js"
        port = int(p.env["DEVENV_SERVER_PORT"])
        url = f"http://127.0.0.1:{port}/"

        def measure(argv: list[str], ready: str) -> list[float]:
            return _edits_served(argv, p.env, None, ready, route, url, runs, 1.0, "w")

        plain = measure(compose(p, "watch", "--no-up", "server"), "Watch enabled")
        ours = measure([*DEVENV, "-C", str(p.root), "watch"], "devenv: watching the server")
        d, b = median(ours), median(plain)
        print(f"  edit-to-served samples, devenv watch: {' '.join(f'{t:.2f}' for t in ours)}", flush=True)
        record("edit-to-served, container watch", d, "docker compose watch", b, "<= 3 s and <= 1.5x",
               f"{d / b:.2f}x ({'ok' if d <= 3 and d <= 1.5 * b else 'MISSED'})")  # fmt: skip
    finally:
        p.cleanup()


def case_db(runs: int) -> None:
    """`db restore` and `db snapshot` vs a soft reset, interleaved in one run (each 1 s after the last command, as
    while a test runs: the ready copies are made in between, as the reset's spare is)."""
    p = Project()
    try:
        p.devenv("up")
        p.devenv("reset", "--yes")
        p.devenv("db", "snapshot", "base")
        resets, restores, snaps = [], [], []
        for i in range(runs):
            time.sleep(1.0)
            resets.append(timed(lambda: p.devenv("reset", "--yes")))
            time.sleep(1.0)
            restores.append(timed(lambda: p.devenv("db", "restore", "base", "--yes")))
            time.sleep(1.0)
            name = f"s{i}"
            t0 = time.perf_counter()
            p.devenv("db", "snapshot", name)
            snaps.append(time.perf_counter() - t0)
            p.devenv("db", "rm", name, "--yes")
        for label, samples in (("soft reset", resets), ("db restore", restores), ("db snapshot", snaps)):
            print(f"  {label} samples: {' '.join(f'{t:.3f}' for t in samples)}", flush=True)
        r, rs, sn = median(resets), median(restores), median(snaps)
        record("db restore", rs, "reset (soft)", r, "<= 1.2x", f"{rs / r:.2f}x ({'ok' if rs <= 1.2 * r else 'MISSED'})")
        record("db snapshot", sn, "reset (soft)", r, "<= 2x", f"{sn / r:.2f}x ({'ok' if sn <= 2 * r else 'MISSED'})")
    finally:
        p.cleanup()


def case_db_cache(runs: int) -> None:
    """A reset after switching to a branch whose migrations key is cached vs the rebuild it replaces (a reset after
    switching to a key never seen: migrate + seed + template), alternating in one run, 1 s apart (as in reset)."""
    p = Project()
    seed = p.root / "apps" / "server" / "prisma" / "seed.js"
    original = seed.read_text()
    try:
        p.devenv("up")
        rebuilds, cached = [], []
        for i in range(runs):
            time.sleep(1.0)  # as between two branch switches: the spare of the template is made in between
            seed.write_text(original + f"// branch {i} of the bench\n")  # a key never seen: rebuilt
            rebuilds.append(timed(lambda: p.devenv("reset", "--yes")))
            time.sleep(1.0)
            seed.write_text(original)  # back on the first branch: its template is in the cache
            t0 = time.perf_counter()
            out = p.devenv("reset", "--yes", "--json").stdout
            cached.append(time.perf_counter() - t0)
            if '"mode": "cached"' not in out:
                sys.exit(f"bench: the switch back did not reuse the cached template: {out}")
        for label, samples in (("rebuild", rebuilds), ("cached", cached)):
            print(f"  reset samples, {label}: {' '.join(f'{t:.3f}' for t in samples)}", flush=True)
        c, b = median(cached), median(rebuilds)
        record(
            "reset, cached migrations key",
            c,
            "reset rebuilding (migrate + seed + template)",
            b,
            ">= 10x faster",
            f"{b / c:.1f}x faster ({'ok' if b / c >= 10 else 'MISSED'})",
        )
    finally:
        seed.write_text(original)
        p.cleanup()  # its stack and volumes go, as every other case's do


# -- databases that follow the work (issue 17: clones per test worker, big databases) --------------------------------
def case_db_clones(runs: int) -> None:
    """`devenv db clones 4` against `devenv db clones 1`, same run, alternating (the copies run in parallel)."""
    p = Project()
    try:
        p.devenv("up", "postgres", "redis", "migrate")
        p.devenv("db", "clones", "1")  # warm: the template's pages are in the page cache

        def clones(n: int) -> float:
            p.devenv("db", "clones", "0")  # both start with no clones to drop
            return timed(lambda: p.devenv("db", "clones", str(n)))

        one, four = [], []
        for _ in range(runs):
            one.append(clones(1))
            four.append(clones(4))
        o, f = median(one), median(four)
        print(f"  samples, 1 clone: {' '.join(f'{t:.3f}' for t in one)}; 4: {' '.join(f'{t:.3f}' for t in four)}")
        record(
            "db clones 4",
            f,
            "db clones 1",
            o,
            "<= 1.5x one clone",
            f"{f / o:.2f}x ({'ok' if f <= 1.5 * o else 'MISSED'})",
        )
    finally:
        p.cleanup()


def _psql(p: Project, sql: str, db: str = "postgres") -> str:
    env = env_of(p)
    argv = compose(p, "exec", "-T", "-e", f"PGPASSWORD={env['POSTGRES_PASSWORD']}", "postgres",
                   "psql", "-h", "127.0.0.1", "-U", env["POSTGRES_USER"], "-d", db, "-v", "ON_ERROR_STOP=1",
                   "-Atqc", sql)  # fmt: skip
    return sh(argv, env=p.env).stdout.strip()


def _timed_sql(p: Project, sql: str) -> float:
    """SQL's own time, from the host over one connection (no `compose exec` in it)."""
    import psycopg

    env = env_of(p)
    with psycopg.connect(
        host="127.0.0.1", port=int(p.env["DEVENV_POSTGRES_PORT"]), user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"], dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        return timed(lambda: conn.execute(sql.encode()))


def _fill(p: Project, db: str, megabytes: int) -> None:
    """A table of MEGABYTES MB of 1 kB rows (stored as they are: below the TOAST threshold, not compressed)."""
    _psql(p, f"CREATE TABLE bench_big AS SELECT g AS id, repeat(md5(g::text), 28) AS body "
             f"FROM generate_series(1, {megabytes * 900}) g", db)  # fmt: skip


def case_big_db(runs: int) -> None:
    """Opt-in (`--only big_db`, slow): a 1 GB seed. Soft reset (ready copy swapped in), `db restore` of a snapshot
    of it and a reset that copies the template (spare = false) against `pg_dump | pg_restore` of the same data;
    then WAL_LOG vs FILE_COPY copy times by size, which set devenv.db.copies.FILE_COPY_FROM."""
    p = Project()
    toml = p.root / "devenv.toml"
    original = toml.read_text()
    runs = max(1, min(runs, 3))
    try:
        p.devenv("up", "postgres", "redis", "migrate")
        env = env_of(p)
        app, user = env["POSTGRES_DB"], env["POSTGRES_USER"]
        tmpl, spare = f"{app}__devenv_template", f"{app}__devenv_spare"
        mark = _psql(
            p, f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{app}__devenv_template'"
        )
        # The template becomes the seeded database plus 1 GB, marked as devenv marked it.
        _psql(p, f"DROP DATABASE IF EXISTS {spare} WITH (FORCE)")
        _psql(p, f"ALTER DATABASE {tmpl} WITH ALLOW_CONNECTIONS true")
        _fill(p, tmpl, 1024)
        _psql(p, f"ALTER DATABASE {tmpl} WITH ALLOW_CONNECTIONS false")
        _psql(p, f"COMMENT ON DATABASE {tmpl} IS '{mark}'")
        size = int(_psql(p, f"SELECT pg_database_size('{tmpl}')"))
        print(f"  template: {size / 1e9:.2f} GB", flush=True)
        p.devenv("reset", "--yes")  # copies from the template, then makes the spare in the background

        def wait_spare() -> None:
            from devenv.core.lock import project_lock

            with project_lock(p.root / ".devenv", "spare", timeout=600, poll=0.05):
                pass

        soft = []
        for _ in range(runs):
            wait_spare()
            soft.append(timed(lambda: p.devenv("reset", "--yes")))
        wait_spare()

        def wait_ready_copy() -> None:  # the snapshot's ready copy (devenv.commands.snapshots), made as the spare is
            from devenv.core.lock import project_lock

            with project_lock(p.root / ".devenv", "snapready-big", timeout=600, poll=0.05):
                pass

        p.devenv("db", "snapshot", "big")
        restore = []
        for _ in range(runs):
            wait_ready_copy()
            wait_spare()
            restore.append(timed(lambda: p.devenv("db", "restore", "big", "--yes")))
        wait_ready_copy()
        wait_spare()
        p.devenv("db", "rm", "big", "--yes")
        toml.write_text(original + "\n[reset]\nspare = false\n")
        copy = [timed(lambda: p.devenv("reset", "--yes")) for _ in range(runs)]
        toml.write_text(original)
        dump_restore = (
            f"pg_dump -Fc -h 127.0.0.1 -U {user} -d {app} | pg_restore -h 127.0.0.1 -U {user} -d bench_restored"
        )

        def baseline() -> float:
            _psql(p, "DROP DATABASE IF EXISTS bench_restored")
            _psql(p, f"CREATE DATABASE bench_restored OWNER {user}")
            argv = compose(
                p, "exec", "-T", "-e", f"PGPASSWORD={env['POSTGRES_PASSWORD']}", "postgres", "sh", "-c", dump_restore
            )
            return timed(lambda: sh(argv, env=p.env))

        base = [baseline() for _ in range(runs)]
        _psql(p, "DROP DATABASE IF EXISTS bench_restored")
        s, c, b, r = median(soft), median(copy), median(base), median(restore)
        record(
            "1 GB seed: reset (soft)",
            s,
            "pg_dump piped to pg_restore",
            b,
            "<= 2 s",
            f"{b / s:.0f}x faster ({'ok' if s <= 2 else 'MISSED'})",
        )
        record(
            "1 GB seed: db restore",
            r,
            "pg_dump piped to pg_restore",
            b,
            "<= 2 s",
            f"{b / r:.0f}x faster ({'ok' if r <= 2 else 'MISSED'})",
        )
        record(
            "1 GB seed: reset (spare = false)", c, "pg_dump piped to pg_restore", b, "(shown)", f"{b / c:.1f}x faster"
        )

        for megabytes in (16, 64, 128, 256, 1024):
            src = f"bench_src_{megabytes}"
            _psql(p, f"DROP DATABASE IF EXISTS {src}")
            _psql(p, f"CREATE DATABASE {src}")
            _fill(p, src, megabytes)
            times = {}
            for strategy in ("WAL_LOG", "FILE_COPY"):
                samples = []
                for _ in range(runs):
                    _psql(p, "DROP DATABASE IF EXISTS bench_copy")
                    samples.append(_timed_sql(p, f"CREATE DATABASE bench_copy TEMPLATE {src} STRATEGY {strategy}"))
                times[strategy] = median(samples)
            _psql(p, "DROP DATABASE IF EXISTS bench_copy")
            _psql(p, f"DROP DATABASE {src}")
            print(
                f"  copy of {megabytes} MB: WAL_LOG {times['WAL_LOG']:.3f} s, FILE_COPY {times['FILE_COPY']:.3f} s",
                flush=True,
            )
    finally:
        toml.write_text(original)
        p.cleanup()


def _remote_exports() -> tuple[dict[str, str], bool]:
    """The second engine of scripts/remote-engine.sh (started when it does not answer): its variables, and whether
    this run started it (then it is stopped afterwards)."""
    script = str(REPO / "scripts" / "remote-engine.sh")
    exports = {}
    for line in sh(["bash", script, "env"]).stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            exports[key] = value.strip("'\"")
    answers = sh(["docker", "-H", exports["DEVENV_REMOTE_TCP"], "info"], check=False).returncode == 0
    if not answers:
        sh(["bash", script, "up"])
    return exports, not answers


def case_remote(runs: int) -> None:
    """`up postgres redis` (after `down`, volumes kept) and `status` on the same stack of a second engine, over ssh
    (one multiplexed connection) and over tcp, alternating in one run."""
    exports, started = _remote_exports()
    p = Project()
    over = {
        "tcp": {**p.env, "DOCKER_HOST": exports["DEVENV_REMOTE_TCP"], "DEVENV_BIND_ADDRESS": "0.0.0.0"},
        "ssh": {**p.env, "DOCKER_HOST": exports["DEVENV_REMOTE_SSH"], "DEVENV_BIND_ADDRESS": "0.0.0.0"},
    }

    def devenv(kind: str, *args: str) -> None:
        done = sh([*DEVENV, "-C", str(p.root), *args], env=over[kind], check=False)
        # `status` of postgres + redis without the server says "unhealthy" (4): measured all the same
        if done.returncode not in ((0, 4) if args[0] == "status" else (0,)) or "Traceback" in done.stderr:
            sys.exit(f"bench: devenv {' '.join(args)} over {kind} failed ({done.returncode}):\n{done.stderr[-2000:]}")

    try:
        devenv("tcp", "up", "postgres", "redis")
        ups: dict[str, list[float]] = {"tcp": [], "ssh": []}
        status: dict[str, list[float]] = {"tcp": [], "ssh": []}
        for _ in range(runs):
            for kind in ("ssh", "tcp"):
                devenv(kind, "down")
                ups[kind].append(timed(lambda kind=kind: devenv(kind, "up", "postgres", "redis")))  # type: ignore[misc]
                status[kind].append(timed(lambda kind=kind: devenv(kind, "status")))  # type: ignore[misc]
        for what, samples in (("up", ups), ("status", status)):
            s, t = median(samples["ssh"]), median(samples["tcp"])
            record(
                f"remote {what} (ssh)",
                s,
                "the same over tcp",
                t,
                "measured (the cost of ssh)",
                f"{s / t:.2f}x",
            )
    finally:
        sh([*DEVENV, "-C", str(p.root), "down", "--volumes", "--yes"], env=over["tcp"], check=False)
        shutil.rmtree(p.dir, ignore_errors=True)
        if started:
            sh(["bash", str(REPO / "scripts" / "remote-engine.sh"), "down"], check=False)


LAYOUT_BEFORE = os.environ.get("DEVENV_BENCH_BEFORE", "cd85243")  # the last commit of the flat devenv/ layout


def case_layout(runs: int) -> None:
    """Opt-in (`--only layout`): `--help`, warm `up` and `status` of this tree against the tree at
    DEVENV_BENCH_BEFORE, the same project and stack, runs interleaved (before, after, before, ...)."""
    before_dir = Path(tempfile.mkdtemp(prefix="devenv-before-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", LAYOUT_BEFORE, "devenv", "compose", "env"],  # the code and its data
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(before_dir)], input=archive.stdout, check=True)
    sh([sys.executable, "-m", "compileall", "-q", str(before_dir / "devenv")])

    def with_tree(env: dict[str, str], tree: Path) -> dict[str, str]:
        return {**env, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}  # that tree's devenv, never the cwd's

    p = Project()
    try:
        p.devenv("up")
        trees = {"before": before_dir, "after": REPO}
        samples: dict[tuple[str, str], list[float]] = {}
        commands = {"--help": ["--help"], "warm up": ["-C", str(p.root), "up"], "status": ["-C", str(p.root), "status"]}
        for _ in range(runs):
            for what, args in commands.items():
                for which, tree in trees.items():
                    env = with_tree(p.env, tree)
                    t = timed(lambda args=args, env=env: sh([sys.executable, "-m", "devenv", *args], env=env))
                    samples.setdefault((what, which), []).append(t)
        for what in commands:
            after, before = median(samples[(what, "after")]), median(samples[(what, "before")])
            ratio = after / before
            verdict = f"{ratio:.2f}x ({'ok' if ratio <= 1.05 else 'MISSED'})"
            record(f"{what} (layout)", after, f"the same at {LAYOUT_BEFORE}", before, "no slower (<= 1.05x)", verdict)
    finally:
        p.cleanup()
        shutil.rmtree(before_dir, ignore_errors=True)


CASES = {
    "help": case_help,
    "pg_redis": case_pg_redis,
    "full_up": case_full_up,
    "warm": case_warm,
    "reset": case_reset,
    "ci_parallel": case_ci_parallel,
    "dev_host": case_dev_host,
    "watch": case_watch,
    "db": case_db,
    "db_cache": case_db_cache,
    "db_clones": case_db_clones,
    "remote": case_remote,
}
OPT_IN = {"big_db": case_big_db, "layout": case_layout}  # only with --only: slow, or comparing with an old tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=sorted({**CASES, **OPT_IN}), default=None)
    args = parser.parse_args()
    for name in args.only or list(CASES):
        print(f"bench: {name} (median of {args.runs})", flush=True)
        {**CASES, **OPT_IN}[name](args.runs)
    print()
    print("| case | devenv (s) | baseline | baseline (s) | target | result |")
    print("| --- | ---: | --- | ---: | --- | --- |")
    for case, d, base, b, target, verdict in ROWS:
        print(f"| {case} | {d:.3f} | {base} | {b:.3f} | {target} | {verdict} |")


if __name__ == "__main__":
    main()
