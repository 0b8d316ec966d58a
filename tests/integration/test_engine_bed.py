"""The test bed itself: compose v2 through python-on-whales, the stand-in images, host connections on 127.0.0.1."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import redis
import yaml
from python_on_whales import DockerClient


def _labelled(client: DockerClient, label: str) -> dict[str, list[str]]:
    filters = [("label", label)]
    return {
        "containers": [c.name for c in client.container.list(all=True, filters=filters)],
        "networks": [n.name for n in client.network.list(filters=filters)],
        "volumes": [v.name for v in client.volume.list(filters=filters)],
    }


def test_standin_postgres_and_redis_answer_on_loopback(tmp_path: Path, images: dict[str, str]) -> None:
    name = f"devenv-bed-{uuid.uuid4().hex[:8]}"
    label = {"devenv.project": name}
    password = "p@ss:w/rd#?&%$x"
    compose = {
        "name": name,
        "services": {
            "postgres": {
                "image": images["postgres"],
                "environment": {
                    "POSTGRES_USER": "bed",
                    "POSTGRES_PASSWORD": password.replace("$", "$$"),
                    "POSTGRES_DB": "beddb",
                },
                "ports": ["127.0.0.1::5432"],
                "labels": label,
                "volumes": ["pgdata:/var/lib/postgresql/data"],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "bed", "-d", "beddb"],
                    "interval": "10s",
                    "start_period": "30s",
                    "start_interval": "250ms",
                },
            },
            "redis": {
                "image": images["redis"],
                "command": ["redis-server", "--requirepass", "bedsecret", "--appendonly", "yes"],
                "ports": ["127.0.0.1::6379"],
                "labels": label,
                "volumes": ["redisdata:/data"],
                "environment": {"REDISCLI_AUTH": "bedsecret"},
                "healthcheck": {
                    "test": ["CMD", "redis-cli", "ping"],
                    "interval": "10s",
                    "start_period": "30s",
                    "start_interval": "250ms",
                },
            },
        },
        "volumes": {"pgdata": {"labels": label}, "redisdata": {"labels": label}},
        "networks": {"default": {"labels": label}},
    }
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(yaml.safe_dump(compose, sort_keys=True))
    client = DockerClient(compose_files=[compose_file], compose_project_name=name)
    try:
        client.compose.up(detach=True, wait=True, wait_timeout=60, quiet=True)
        _pg_host, pg_port = client.compose.port("postgres", 5432)
        _rd_host, rd_port = client.compose.port("redis", 6379)
        assert pg_port and rd_port and pg_port != rd_port

        with psycopg.connect(
            host="127.0.0.1", port=pg_port, user="bed", password=password, dbname="beddb", connect_timeout=5
        ) as conn:
            assert conn.execute("select current_user, current_database()").fetchone() == ("bed", "beddb")

        r = redis.Redis(host="127.0.0.1", port=rd_port, password="bedsecret", socket_timeout=5)
        assert r.set("bed", "ok") and r.get("bed") == b"ok"
        r.close()
        with_wrong_password = redis.Redis(host="127.0.0.1", port=rd_port, password="nope", socket_timeout=5)
        try:
            with_wrong_password.ping()
            raise AssertionError("redis accepted a wrong password")
        except redis.AuthenticationError:
            pass
        finally:
            with_wrong_password.close()

        assert len(_labelled(client, f"devenv.project={name}")["volumes"]) == 2
    finally:
        client.compose.down(volumes=True, remove_orphans=True, quiet=True)
    assert _labelled(client, f"devenv.project={name}") == {"containers": [], "networks": [], "volumes": []}
