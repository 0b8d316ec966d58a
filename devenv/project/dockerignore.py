""".dockerignore as BuildKit reads it: which of the build context's files the server image can see.

Read for warnings only (migrations the image would not have, a .env it would carry); BuildKit does the build.
The rules are Docker's (moby/patternmatcher): one pattern per line, `#` comments, `!` re-includes, paths relative
to the context with a leading `/` ignored, `*` and `?` within one path segment, `**` across segments, a pattern
that matches a folder matches everything below it, and the last matching line decides. The ignore file is
`<Dockerfile>.dockerignore` next to the Dockerfile when there is one, else `<context>/.dockerignore`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devenv.project.dockerfile import Dockerfile


@dataclass(frozen=True)
class Rule:
    """One line of an ignore file."""

    line: int
    pattern: str  # as written, without the `!`
    negated: bool
    regex: re.Pattern[str]


@dataclass(frozen=True)
class IgnoreFile:
    path: Path
    rules: tuple[Rule, ...]

    def excluding(self, relpath: str) -> Rule | None:
        """The rule that keeps RELPATH (relative to the context, `/`-separated) out of the image, or None."""
        parts = relpath.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        decided: Rule | None = None
        for rule in self.rules:
            if any(rule.regex.fullmatch(p) for p in prefixes):
                decided = None if rule.negated else rule
        return decided


def find(dockerfile: Path, context: Path) -> Path | None:
    """The ignore file BuildKit uses for DOCKERFILE built from CONTEXT, or None."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return candidate
    return None


def read(dockerfile: Path, context: Path) -> IgnoreFile | None:
    """The ignore file's rules (None: there is none, or it cannot be read)."""
    path = find(dockerfile, context)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return IgnoreFile(path, tuple(parse(text)))


def parse(text: str) -> list[Rule]:
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip() if negated else line
        cleaned = posixpath.normpath(pattern).lstrip("/")
        if cleaned in {"", "."}:
            continue
        rules.append(Rule(number, pattern, negated, _compile(cleaned)))
    return rules


def _compile(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` : any number of folders, none included
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def image_warnings(
    dockerfile: Dockerfile, context: Path, migrations: Path | None, env_file: Path, state_dir: Path | None = None
) -> list[str]:
    """What the ignore file does to the server image that devenv's stack trips on: migrations the migrate job
    (which runs in that image) would not find, the .env devenv writes copied in by a whole-context COPY, and
    devenv's own folder (STATE_DIR) in the context, whose files change with every stack (a CI stack's above all)."""
    ignore = read(dockerfile.path, context)
    name = ignore.path.name if ignore else ".dockerignore"
    out: list[str] = []
    if migrations is not None and ignore is not None:
        sample = next(iter(sorted(migrations.glob("*/migration.sql"))), None)
        rel = _relative(sample, context) if sample else None
        rule = ignore.excluding(rel) if rel else None
        if rule is not None:
            out.append(
                f"{name}:{rule.line}: `{rule.pattern}` keeps {_relative(migrations, context)} out of the server "
                "image, and the migrate job runs in that image: `prisma migrate deploy` would apply nothing. "
                f"Remove that line (devenv needs the migrations in the image), or set migrate.command."
            )
    rel_env = _relative(env_file, context)
    copies_all = any(posixpath.normpath(c) == "." for c in dockerfile.copies)
    if rel_env and copies_all and (ignore is None or ignore.excluding(rel_env) is None):
        out.append(
            f"{rel_env} is in the server's build context and {name} does not exclude it: the whole-context COPY puts "
            "the secrets devenv writes there into the image (and rebuilds it whenever they change). "
            f"Add `{rel_env}` to {name}."
        )
    rel_state = _relative(state_dir, context) if state_dir is not None else None
    if rel_state and copies_all and (ignore is None or ignore.excluding(f"{rel_state}/state.json") is None):
        out.append(
            f"{rel_state}/ (devenv's own files) is in the server's build context and {name} does not exclude it: "
            "the whole-context COPY takes it, so every CI stack (`devenv run`, `ci up`) and every change there "
            f"rebuilds that step and all after it. Add `{rel_state}/` to {name}."
        )
    return out


def _relative(path: Path, context: Path) -> str | None:
    try:
        return path.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        return None
