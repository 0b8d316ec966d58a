"""Where devenv's data lives: `compose/` (compose building blocks) and `env/` (the env-var catalogue).

A wheel carries them inside the package (`devenv/_data/`, see pyproject's force-include); a source checkout has
them at the top of the repository. Both are plain files, so `Path` is enough (no zip imports to support).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any, Literal

from devenv.core.errors import DevenvError

DataKind = Literal["compose", "env"]

_PACKAGE = Path(__file__).resolve().parents[1]  # devenv/, above core/


@functools.cache
def data_dir(kind: DataKind) -> Path:
    """The directory holding devenv's `compose/` or `env/` data."""
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise DevenvError(
        f"devenv's data folder {kind}/ is missing (looked in {_PACKAGE / '_data'} and {_PACKAGE.parent}).",
        "reinstall devenv (`pip install --force-reinstall devenv`), or run it from a complete source checkout.",
    )


def data_file(kind: DataKind, name: str) -> Path:
    """One file of devenv's data, e.g. data_file('compose', 'postgres.yml')."""
    path = data_dir(kind) / name
    if not path.is_file():
        raise DevenvError(f"devenv's data file {kind}/{name} is missing.", "reinstall devenv.")
    return path


@functools.cache
def load_toml(kind: DataKind, name: str) -> dict[str, Any]:
    """A TOML data file, parsed once per process."""
    with data_file(kind, name).open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def load_yaml(kind: DataKind, name: str) -> Any:
    """A YAML data file, parsed once per process (callers deep-copy before changing it)."""
    import yaml

    return yaml.safe_load(data_file(kind, name).read_text(encoding="utf-8"))
