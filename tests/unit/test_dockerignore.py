""".dockerignore as BuildKit reads it, and the warnings `up` gives about the server image it shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.commands.lifecycle import _notes
from devenv.project import dockerfile, dockerignore
from devenv.project.discovery import load_project
from tests.fixtures.helpers import context_of, copy_project


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        ("node_modules", "node_modules/x/index.js", True),  # a folder's pattern covers what is below it
        ("node_modules", "apps/api/node_modules/x.js", False),  # patterns are anchored at the context
        ("**/node_modules", "apps/api/node_modules/x.js", True),
        ("**/node_modules", "node_modules/x.js", True),  # `**/` may be no folder at all
        ("/prisma/migrations", "prisma/migrations/1_init/migration.sql", True),  # a leading / changes nothing
        ("prisma/migrations/*", "prisma/migrations/1_init/migration.sql", True),
        ("prisma/*.sql", "prisma/migrations/1_init/migration.sql", False),  # `*` stays in one segment
        ("*.md\n!README.md", "README.md", False),  # the last matching line decides
        ("!README.md\n*.md", "README.md", True),
        ("# prisma\n\n  ", "prisma/schema.prisma", False),
        ("migration?.sql", "migration1.sql", True),
        ("[a-c].env", "b.env", True),
        (".env*\n!.env.example", ".env.example", False),
        ("./dist", "dist/main.js", True),
    ],
)
def test_docker_pattern_rules(rules: str, path: str, excluded: bool) -> None:
    ignore = dockerignore.IgnoreFile(Path(".dockerignore"), tuple(dockerignore.parse(rules)))
    assert (ignore.excluding(path) is not None) is excluded


def test_the_dockerfiles_own_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("dist\n")
    (tmp_path / "Dockerfile.dockerignore").write_text("prisma\n")
    found = dockerignore.read(tmp_path / "Dockerfile", tmp_path)
    assert found is not None and found.path.name == "Dockerfile.dockerignore"
    assert found.excluding("prisma/schema.prisma") and not found.excluding("dist/x.js")


NEST_LIKE = """FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY prisma ./prisma/
RUN npm ci
COPY . .
CMD ["npm", "run", "start:prod"]
"""


def _nest_like(root: Path) -> Path:
    """ts-app as nestjs-starter has it: Prisma with one migration, and a Dockerfile that copies everything."""
    copy_project("ts-app", root)
    (root / "prisma" / "migrations" / "20250101_init").mkdir(parents=True)
    (root / "prisma" / "schema.prisma").write_text('datasource db {\n  provider = "postgresql"\n}\n')
    (root / "prisma" / "migrations" / "20250101_init" / "migration.sql").write_text("CREATE TABLE t (id int);\n")
    (root / "Dockerfile").write_text(NEST_LIKE)
    return root


def test_up_warns_when_dockerignore_keeps_the_migrations_out_of_the_image(tmp_path: Path) -> None:
    root = _nest_like(tmp_path / "app")
    (root / ".dockerignore").write_text("node_modules\n.env\n\n# Database\nprisma/migrations\n")
    _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
    (warning,) = [w for w in warnings if "keeps prisma/migrations" in w]
    assert warning.startswith(".dockerignore:5: `prisma/migrations` keeps prisma/migrations out of the server image")
    assert "Remove that line" in warning
    (root / ".dockerignore").write_text("node_modules\n.env\nprisma/migrations\n!prisma/migrations\n")
    _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
    assert not [w for w in warnings if "keeps prisma/migrations" in w]


def test_up_warns_when_a_whole_context_copy_would_put_the_env_file_in_the_image(tmp_path: Path) -> None:
    root = _nest_like(tmp_path / "app")
    parsed = dockerfile.read(root / "Dockerfile")
    assert parsed is not None and "." in parsed.copies  # the fixture copies its whole context
    (root / ".dockerignore").write_text("node_modules\n")
    _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
    assert [w for w in warnings if w.startswith(".env is in the server's build context")]
    (root / ".dockerignore").write_text("node_modules\n.env*\n")
    _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
    assert not [w for w in warnings if ".env is in" in w]


def test_the_example_and_its_ignore_file_give_no_image_warning() -> None:
    from tests.conftest import EXAMPLE

    _, warnings = _notes(context_of(load_project(EXAMPLE, environ={})), ["postgres", "migrate", "server"])
    assert not [w for w in warnings if "dockerignore" in w or "build context" in w]


def test_up_warns_when_devenvs_own_folder_is_in_a_whole_context_copy(tmp_path: Path) -> None:
    """A CI stack writes .devenv/stacks/NAME/: in the context of a `COPY . .`, every CI stack rebuilds that step."""
    root = _nest_like(tmp_path / "app")
    (root / ".dockerignore").write_text("node_modules\n.env\n")
    _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
    (warning,) = [w for w in warnings if w.startswith(".devenv/")]
    assert "does not exclude it" in warning and "Add `.devenv/` to .dockerignore." in warning
    for rules in ("node_modules\n.env\n.devenv\n", "node_modules\n.env\n**/.devenv\n", ".env\n.devenv/\n"):
        (root / ".dockerignore").write_text(rules)
        _, warnings = _notes(context_of(load_project(root, environ={})), ["postgres", "migrate", "server"])
        assert not [w for w in warnings if w.startswith(".devenv/")], rules
