"""The server's Prisma setup: where the schema and the migrations are, whether a seed is configured, and the
commands devenv runs (migrate deploy, the seed) unless devenv.toml says otherwise."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv.project.config import Config
from devenv.project.nodeapp import NodeApp

SEED = ("npx", "prisma", "db", "seed")
_CONFIG_SEED = re.compile(r"\bseed\s*:")


@dataclass(frozen=True)
class PrismaSetup:
    """Prisma as this project has it."""

    schema: Path | None  # schema.prisma (or the schema folder), None when the project has none
    migrations: Path | None  # the migrations folder next to it
    migration_count: int
    seed: str | None  # how the seed is configured ("package.json prisma.seed", "prisma.config.ts"), None: none
    config_file: Path | None  # prisma.config.ts/js/mjs

    @property
    def folder(self) -> Path | None:
        """The folder holding the schema (and its migrations, seed, adapters)."""
        if self.schema is None:
            return None
        return self.schema if self.schema.is_dir() else self.schema.parent


def find_prisma(root: Path, server_dir: Path, app: NodeApp) -> PrismaSetup:
    """Look where Prisma looks: package.json's prisma.schema, prisma/schema.prisma in the server folder, then at
    the repository root (a schema shared by several packages)."""
    config_file = next(
        (
            p
            for folder in dict.fromkeys([server_dir, root])
            for p in sorted(folder.glob("prisma.config.*"))
            if p.is_file()
        ),
        None,
    )
    schema: Path | None = None
    declared = app.prisma.get("schema")
    candidates = [server_dir / str(declared)] if isinstance(declared, str) else []
    candidates += [
        server_dir / "prisma" / "schema.prisma",
        server_dir / "prisma" / "schema",
        server_dir / "schema.prisma",
    ]
    candidates += [root / "prisma" / "schema.prisma"]
    schema = next((c for c in candidates if c.exists()), None)
    migrations = None
    count = 0
    if schema is not None:
        folder = schema if schema.is_dir() else schema.parent
        if (folder / "migrations").is_dir():
            migrations = folder / "migrations"
            count = sum(1 for p in migrations.iterdir() if p.is_dir() and (p / "migration.sql").is_file())
    seed = None
    if app.prisma.get("seed"):
        seed = "package.json prisma.seed"
    elif config_file is not None and _CONFIG_SEED.search(config_file.read_text(encoding="utf-8", errors="replace")):
        seed = config_file.name
    return PrismaSetup(schema, migrations, count, seed, config_file)


def seed_command(config: Config, setup: PrismaSetup) -> tuple[str, ...]:
    """migrate.seed_command when devenv.toml sets it; else `npx prisma db seed` when a seed is configured."""
    if config.migrate.seed_command is not None:
        return config.migrate.seed_command
    return SEED if setup.seed else ()


def key_files(setup: PrismaSetup, server_dir: Path) -> list[Path]:
    """The files that shape a fresh database (hashed into the migrations key)."""
    files: list[Path] = []
    if setup.folder is not None:
        files += sorted(p for p in setup.folder.rglob("*") if p.is_file())
    if setup.config_file is not None:
        files.append(setup.config_file)
    files += sorted(p for p in server_dir.glob("seed.*") if p.is_file())
    return sorted(set(files))


def migrations_key(server_dir: Path, files: Sequence[Path], commands: Sequence[Sequence[str]]) -> str:
    """Hash of everything that shapes a fresh database: the Prisma files (schema, migrations, seed, config) and
    the commands that migrate and seed (see devenv.project.prisma.key_files)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.relpath(path, server_dir).encode() + b"\0" + path.read_bytes() + b"\0")
    for argv in commands:
        digest.update(" ".join(argv).encode())
    return digest.hexdigest()[:16]
