"""What devenv keeps on disk between commands: the state folder `.devenv/`, state.json, and atomic writes.

Every file devenv writes goes through `atomic_write` (a temp file in the same folder, fsync, rename), so a reader
never sees half a file and an interrupted command leaves the old one in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_DIR = ".devenv"
STATE_FILE = "state.json"
CHECKOUT_FILE = "checkout.json"  # this checkout's choices: its stack's name, fallback ports (devenv.stack.checkouts)
GITIGNORE = "# devenv's generated files and state; never commit them.\n*\n"


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write TEXT to PATH via a temp file in the same folder and os.replace (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it; O_CREAT never widens an existing file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, text: str, mode: int) -> bool:
    """atomic_write unless PATH already holds TEXT with MODE; True when it wrote."""
    try:
        if path.read_text(encoding="utf-8") == text and (os.stat(path).st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    atomic_write(path, text, mode)
    return True


def secrets_dir(state_dir: Path) -> Path:
    """Where the env files with the stack's passwords live: a private folder outside the project (0700), so they
    never reach a build context (`COPY . .`) or an image; one per stack, named by a hash of its state folder."""
    import hashlib

    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "devenv" / "secrets"
    return base / hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]


def ensure_private_dir(path: Path) -> Path:
    """PATH and its devenv parents, readable by this user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (path, path.parent):
        os.chmod(folder, 0o700)
    return path


def ensure_state_dir(root: Path, state_dir: Path) -> Path:
    """Create ROOT/.devenv (with a .gitignore of `*`) and the stack's folder STATE_DIR inside it."""
    top = root / STATE_DIR
    top.mkdir(parents=True, exist_ok=True)
    ignore = top / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE, encoding="utf-8")
    state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


def load_state(state_dir: Path) -> dict[str, Any]:
    """devenv's memory of the last successful `up` (fingerprints), or {}."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Write the state atomically."""
    atomic_write(state_dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n", 0o644)


def read_record(root: Path) -> dict[str, Any]:
    """What this checkout chose before (its stack's name, fallback ports); {} when the file is another's copy."""
    try:
        data = json.loads((root / STATE_DIR / CHECKOUT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    # A copied folder (cp -r with .devenv/) carries the original's record: it is not this checkout's.
    return data if isinstance(data, dict) and data.get("path") == str(root) else {}


def write_record(root: Path, **updates: Any) -> None:
    """Keep this checkout's choices (merged into what it chose before)."""
    data = {**read_record(root), **updates, "path": str(root)}
    ensure_state_dir(root, root / STATE_DIR)
    atomic_write(root / STATE_DIR / CHECKOUT_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o644)
