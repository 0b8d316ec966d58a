"""Many checkouts on one machine: every clone and worktree gets its own stack, and none can touch another's.

Everything devenv creates carries the checkout's path (label devenv.checkout). A stack whose resources carry
another checkout's path is never this one's: `up` gives this checkout its own name (`<name>-<4 hex of a hash of
its path>`, said once and kept in .devenv/checkout.json), and `reset`/`down` refuse it. A name pinned in
devenv.toml or DEVENV_PROJECT_NAME is kept, and a stack under it that belongs to another checkout is refused.
Stacks made before devenv labelled checkouts carry no path and stay with whoever uses them, as before.

Host ports work the same way: a default port that is taken (by another stack or anything else) falls back to a
free one, kept in .devenv/checkout.json so .env stays put; a pinned port stays strict and fails fast naming
who holds it.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devenv.errors import PortInUse, UsageError
from devenv.ports import port_is_free
from devenv.runtime import CHECKOUT_LABEL, PROJECT_LABEL, LabelledStack, Runtime, parse_created
from devenv.state import STATE_DIR, secrets_dir

PORT_KEYS = {"postgres": "postgres.port", "redis": "redis.port", "server": "server.port"}
ENV_VARS = {"postgres": "DEVENV_POSTGRES_PORT", "redis": "DEVENV_REDIS_PORT", "server": "DEVENV_SERVER_PORT"}


class ForeignStack(UsageError):
    """The stack under this name belongs to another checkout."""


def suffixed(name: str, root: Path, length: int = 4) -> str:
    """NAME-<LENGTH hex of a hash of ROOT>: stable for a checkout, different for another one."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:length]
    return f"{name[: 63 - length - 1]}-{digest}"


def owners(labels: Iterable[Mapping[str, str]]) -> set[str]:
    """The checkouts named by these resources' labels (unlabelled ones name none)."""
    return {value for value in (lab.get(CHECKOUT_LABEL, "") for lab in labels) if value}


def foreign_owner(labels: Iterable[Mapping[str, str]], root: Path) -> str | None:
    """Another checkout these resources belong to, or None (this one's, or made before checkouts were labelled)."""
    others = sorted(o for o in owners(labels) if o != str(root))
    return others[0] if others else None


def refusal(name: str, other: str, root: Path, action: str) -> ForeignStack:
    if Path(other).exists():
        return ForeignStack(
            f"the stack {name!r} belongs to the checkout {other}, not to this one ({root}); devenv never {action} "
            "another checkout's stack.",
            f"run devenv in {other} for that stack, or give this checkout its own: DEVENV_PROJECT_NAME=NAME (or "
            "name in a devenv.toml of its own); `devenv ls` lists the stacks.",
        )
    return ForeignStack(
        f"the stack {name!r} belongs to the checkout {other}, which no longer exists; devenv never {action} "
        "another checkout's stack.",
        "`devenv down --gone` removes the stacks of checkouts that are gone (it asks first); `devenv ls` lists them.",
    )


def guard(runtime: Runtime, name: str, root: Path, action: str) -> None:
    """Refuse (ForeignStack) when the stack NAME belongs to another checkout than ROOT."""
    other = foreign_owner(runtime.stack_labels(name), root)
    if other is not None:
        raise refusal(name, other, root, action)


@dataclass(frozen=True)
class Claim:
    """The stack name this checkout uses, and what to tell the user about it (once)."""

    name: str
    note: str = ""


def claim_name(
    runtime: Runtime, name: str, root: Path, *, pinned: bool, known: Iterable[Mapping[str, str]] = ()
) -> Claim:
    """The name this checkout's stack has: NAME, unless another checkout holds it (then a name of its own).

    KNOWN: labels of the stack's containers the caller listed already (when they all say this checkout, the
    engine is not asked again).
    """
    seen: list[Mapping[str, str]] = list(known)
    if not (seen and owners(seen) == {str(root)}):
        seen = list(runtime.stack_labels(name))
    other = foreign_owner(seen, root)
    if other is None:
        return Claim(name)
    if pinned:
        raise refusal(name, other, root, "starts, resets or removes")
    mine = next(
        (
            candidate
            for candidate in (suffixed(name, root, length) for length in (4, 6, 8, 12, 16))  # a clash: longer hashes
            if foreign_owner(runtime.stack_labels(candidate), root) is None
        ),
        None,
    )
    if mine is None:
        raise refusal(name, other, root, "starts, resets or removes")
    gone = "" if Path(other).exists() else ", which no longer exists (`devenv down --gone` removes its stack)"
    return Claim(
        mine,
        f"the stack name {name!r} belongs to the checkout {other}{gone}; this checkout's stack is {mine!r} "
        "(kept in .devenv/checkout.json; DEVENV_PROJECT_NAME or name in devenv.toml pins one).",
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice of an ephemeral one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def holder(runtime: Runtime | None, port: int) -> str:
    """Who holds host PORT, in words: a devenv stack and its checkout, another container, or another process."""
    holders = runtime.port_holders(port) if runtime is not None else []
    for _container, labels in holders:
        stack = labels.get(PROJECT_LABEL)
        if stack:
            checkout = labels.get(CHECKOUT_LABEL)
            return f"the devenv stack {stack!r}" + (f" of {checkout}" if checkout else "")
    if holders:
        return f"the container {holders[0][0]!r}"
    return "another process"


def choose_port(service: str, port: int, owned: set[int], recorded: int | None) -> int | None:
    """A port for SERVICE when PORT (not pinned) is taken: the one recorded before if it is free, else a new one;
    None when PORT itself is fine (free, or this stack's)."""
    if port == 0 or port in owned or port_is_free(port):
        return None
    if recorded and recorded != port and (recorded in owned or port_is_free(recorded)):
        return recorded
    return free_port()


def pinned_port_error(service: str, port: int, runtime: Runtime | None, setting: str) -> PortInUse:
    """The error for a pinned host port that something else holds."""
    return PortInUse(
        f"host port {port} for {service} is already in use on 127.0.0.1, by {holder(runtime, port)}.",
        f"stop what holds it (`ss -ltnp 'sport = :{port}'`, `devenv ls`) or set {setting} to a free port "
        "(or unset it: devenv then picks one).",
    )


# -- devenv ls / down --gone ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackInfo:
    """One stack as `devenv ls` shows it."""

    name: str
    checkout: str  # "" when the stack predates checkout labels
    gone: bool  # its checkout folder no longer exists
    state: str  # running | stopped | partial | volumes only
    ports: dict[str, int]
    volume_bytes: int | None
    created: str
    age_seconds: float | None
    ci: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkout": self.checkout or None,
            "gone": self.gone,
            "state": self.state,
            "ports": self.ports,
            "volume_bytes": self.volume_bytes,
            "created": self.created or None,
            "age_seconds": self.age_seconds,
            "ci": self.ci,
        }


def _age(created: str, now: datetime) -> float | None:
    when = parse_created(created)
    return round((now - when).total_seconds(), 1) if when else None


def describe(stack: LabelledStack, now: datetime | None = None) -> StackInfo:
    """A labelled stack, with its checkout's fate and its state in words."""
    now = now or datetime.now(UTC)
    services = stack.containers - stack.jobs
    if not stack.containers:
        state = "volumes only" if stack.volumes else "network only"
    elif stack.running >= services:
        state = "running"
    elif stack.running == 0:
        state = "stopped"
    else:
        state = f"partial ({stack.running}/{services} running)"
    checkout = stack.checkout
    return StackInfo(
        name=stack.name,
        checkout=checkout,
        gone=bool(checkout) and not Path(checkout).exists(),
        state=state,
        ports=stack.ports,
        volume_bytes=stack.volume_bytes,
        created=stack.created,
        age_seconds=_age(stack.created, now),
        ci=stack.labels.get("devenv.ci") == "true",
    )


def list_stacks(runtime: Runtime) -> list[StackInfo]:
    """Every devenv stack on this engine, with its checkout (or "gone"), state, ports, volume size and age."""
    return [describe(s) for s in runtime.labelled_stacks(ci_only=False, sizes=True)]


def gone_stacks(runtime: Runtime) -> list[StackInfo]:
    """The stacks whose checkout folder no longer exists (a stack without a checkout label is never one)."""
    return [s for s in list_stacks(runtime) if s.gone]


def remove_gone(runtime: Runtime, stacks: Iterable[StackInfo]) -> list[StackInfo]:
    """Remove STACKS (containers, networks and volumes, by label), checking each is still gone first."""
    removed = []
    for stack in stacks:
        if stack.gone and not Path(stack.checkout).exists():
            runtime.remove_labelled(stack.name)
            top = Path(stack.checkout) / STATE_DIR
            for state_dir in (top, top / "stacks" / stack.name):  # its env files, wherever its state was
                shutil.rmtree(secrets_dir(state_dir), ignore_errors=True)
            removed.append(replace(stack, state="removed"))
    return removed
