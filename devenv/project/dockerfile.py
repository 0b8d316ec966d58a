"""What devenv needs to know of the server's Dockerfile: its base images (FROM lines, with their line numbers and
build arguments resolved), its stages, what it copies, its CMD, and a `# syntax=` frontend line.

Read for messages and defaults only (which line names an image that cannot be pulled, whether COPY paths are
relative to the repository root or to the server folder, which stage is a dev target); BuildKit does the build.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_ARG_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_SYNTAX = re.compile(r"#\s*syntax\s*=\s*(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class FromLine:
    """One FROM: where it is, the image as written and as BuildKit resolves it, and the stage it names."""

    line: int
    text: str
    image: str
    resolved: str
    stage: str | None


@dataclass(frozen=True)
class Dockerfile:
    """The parts of a Dockerfile devenv reads."""

    path: Path
    syntax: tuple[int, str] | None  # (line, frontend image) of a `# syntax=` directive
    froms: tuple[FromLine, ...]
    copies: tuple[str, ...]  # the sources of COPY/ADD (not --from= copies)
    cmd: str | None  # the last CMD as written
    instructions: tuple[tuple[int, str], ...] = ()  # (line, instruction) with continuations joined
    placements: tuple[tuple[int, str, str], ...] = ()  # (stage index, source, absolute destination) of COPY/ADD

    def destination(self, source: str, stage: str | None = None) -> str | None:
        """Where STAGE (default: the last) copies SOURCE (a path relative to the build context), or None."""
        index = len(self.froms) - 1
        if stage is not None:
            index = next((i for i, f in enumerate(self.froms) if f.stage == stage), index)
        wanted = source.strip("/").removeprefix("./")
        for at, src, dest in self.placements:
            if at == index and src.strip("/").removeprefix("./") == wanted:
                return dest
        return None

    def line_of(self, instruction: str) -> int | None:
        """The line an instruction as BuildKit echoes it (`RUN npm ci`) starts on."""
        wanted = " ".join(instruction.split())
        return next((n for n, text in self.instructions if " ".join(text.split()).endswith(wanted)), None)

    @property
    def stages(self) -> tuple[str, ...]:
        """The named stages, in order."""
        return tuple(f.stage for f in self.froms if f.stage)

    def base_images(self) -> tuple[str, ...]:
        """The images the build pulls (a FROM of an earlier stage is not one)."""
        stages = {s.lower() for s in self.stages}
        return tuple(f.resolved for f in self.froms if f.resolved.lower() not in stages and f.resolved != "scratch")

    def from_line(self, image: str) -> FromLine | None:
        """The FROM line that pulls IMAGE (as the engine names it: docker.io/library/node:18 is node:18)."""
        wanted = normalise(image)
        return next((f for f in self.froms if normalise(f.resolved) == wanted), None)


def normalise(image: str) -> str:
    """An image reference without Docker Hub's implicit prefixes and with :latest made explicit."""
    ref = image.removeprefix("docker.io/").removeprefix("library/")
    name = ref.split("@", 1)[0]
    return ref if ":" in name.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) with backslash continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1])
            continue
        current.append(stripped)
        out.append((start, " ".join(current)))
        current = []
    if current:
        out.append((start, " ".join(current)))
    return out


def parse(path: Path, text: str, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """Parse TEXT (the Dockerfile at PATH); ARGs before the first FROM resolve with BUILD_ARGS over defaults."""
    syntax: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):  # parser directives: only at the very top
        if not raw.strip().startswith("#"):
            break
        match = _SYNTAX.match(raw.strip())
        if match:
            syntax = (number, match.group(1))
    args: dict[str, str] = {}
    froms: list[FromLine] = []
    copies: list[str] = []
    placements: list[tuple[int, str, str]] = []
    workdir = "/"
    cmd: str | None = None
    given = dict(build_args or {})

    def resolve(value: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(3)
            return given.get(name, args.get(name, m.group(2) or ""))

        return _ARG_REF.sub(one, value)

    lines = _logical_lines(text)
    for number, line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not froms:
            name, _, default = rest.strip().partition("=")
            args[name.strip()] = default.strip().strip('"').strip("'")
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = words[0] if words else ""
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            froms.append(FromLine(number, line, image, resolve(image), stage))
            workdir = "/"
        elif keyword == "WORKDIR":
            workdir = posixpath.join(workdir, rest.strip().strip('"'))
        elif keyword in {"COPY", "ADD"}:
            words = rest.split()
            if not any(w.startswith("--from") for w in words):
                paths = [p.strip('[]",') for p in words if not p.startswith("--")]
                copies.extend(paths[:-1])
                if len(paths) == 2 and froms:
                    dest = posixpath.normpath(posixpath.join(workdir, paths[1]))
                    if paths[1].endswith("/") or paths[1] in {".", "./"}:
                        dest = posixpath.join(dest, posixpath.basename(paths[0].rstrip("/")))
                    placements.append((len(froms) - 1, paths[0], dest))
        elif keyword == "CMD":
            cmd = rest.strip()
    return Dockerfile(path, syntax, tuple(froms), tuple(copies), cmd, tuple(lines), tuple(placements))


def read(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile | None:
    """The Dockerfile at PATH, or None when there is none (or it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse(path, text, build_args)
