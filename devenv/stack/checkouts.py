"""Many checkouts on one machine: every clone and worktree gets its own stack, and none can touch another's.

Everything devenv creates carries the checkout's path (label devenv.checkout) and the machine it is on
(devenv.machine, devenv.machine): a checkout is a path *on a machine*, so the same path on two machines sharing one
engine is two checkouts. A stack whose resources carry another checkout's path, or another machine's id, is never
this one's: `up` gives this checkout its own name (`<name>-<4 hex of a hash of
its path>`, said once and kept in .devenv/checkout.json), and `reset`/`down` refuse it. A name pinned in
devenv.toml or DEVENV_PROJECT_NAME is kept, and a stack under it that belongs to another checkout is refused.
Stacks made before devenv labelled checkouts carry no path and stay with whoever uses them, as before; stacks
made before devenv labelled machines count as this machine's for `up`, `reset` and `down` (they were made where
their path is), but `down --gone` never removes them: from a shared engine "gone" cannot be told for them.

Host ports work the same way: a default port that is taken (by another stack or anything else) falls back to a
free one, kept in .devenv/checkout.json so .env stays put; a pinned port stays strict and fails fast naming
who holds it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devenv.core.errors import PortInUse, UsageError
from devenv.core.state import STATE_DIR, secrets_dir
from devenv.engine.ports import EnginePorts, LocalPorts, PortSpace
from devenv.engine.runtime import (
    CHECKOUT_LABEL,
    MACHINE_LABEL,
    MACHINE_NAME_LABEL,
    PROJECT_LABEL,
    LabelledStack,
    Runtime,
    parse_created,
)
from devenv.engine.target import is_loopback

PORT_KEYS = {"postgres": "postgres.port", "redis": "redis.port", "server": "server.port"}
ENV_VARS = {"postgres": "DEVENV_POSTGRES_PORT", "redis": "DEVENV_REDIS_PORT", "server": "DEVENV_SERVER_PORT"}


class ForeignStack(UsageError):
    """The stack under this name belongs to another checkout (or another machine's checkout)."""


@dataclass(frozen=True)
class Owner:
    """A checkout as the labels name it: its path, and the machine it is on ("" before machines were labelled)."""

    path: str
    machine: str = ""
    machine_name: str = ""

    def on_machine(self, machine: str) -> bool:
        """Whether this checkout is on MACHINE (a checkout labelled before machines were counts as here)."""
        return not self.machine or self.machine == machine

    def where(self) -> str:
        """The machine in words: `box (3f2a9c01)`."""
        short = self.machine[:8]
        return f"{self.machine_name} ({short})" if self.machine_name else short


def suffixed(name: str, root: Path, length: int = 4, machine: str = "") -> str:
    """NAME-<LENGTH hex of a hash of ROOT (and MACHINE)>: stable for a checkout, different for another one."""
    key = f"{machine}\0{root}" if machine else str(root)
    digest = hashlib.sha256(key.encode()).hexdigest()[:length]
    return f"{name[: 63 - length - 1]}-{digest}"


def owner_of(labels: Mapping[str, str]) -> Owner | None:
    """The checkout one resource's labels name (None: made before checkouts were labelled, or by hand)."""
    path = labels.get(CHECKOUT_LABEL, "")
    if not path:
        return None
    return Owner(path, labels.get(MACHINE_LABEL, ""), labels.get(MACHINE_NAME_LABEL, ""))


def owners(labels: Iterable[Mapping[str, str]]) -> set[str]:
    """The checkout paths named by these resources' labels (unlabelled ones name none)."""
    return {o.path for o in (owner_of(lab) for lab in labels) if o is not None}


def foreign_owner(labels: Iterable[Mapping[str, str]], root: Path, *, machine: str) -> Owner | None:
    """Another checkout these resources belong to, or None (this one's, or made before checkouts were labelled).

    MACHINE: this machine's id; a resource of the same path on another machine is another checkout."""
    found = {o for o in (owner_of(lab) for lab in labels) if o is not None}
    others = sorted(
        (o for o in found if o.path != str(root) or not o.on_machine(machine)),
        key=lambda o: (o.on_machine(machine), o.path, o.machine),  # another machine's first: the stronger claim
    )
    return others[0] if others else None


def refusal(name: str, other: Owner, root: Path, action: str, *, machine: str) -> ForeignStack:
    """The error for a stack that belongs to OTHER: it names the owner (and its machine) and proposes no drop."""
    if not other.on_machine(machine):
        return ForeignStack(
            f"the stack {name!r} belongs to the checkout {other.path} on the machine {other.where()}, not to this "
            f"one ({root} here); devenv never {action} another machine's stack.",
            "run devenv on that machine for that stack; this checkout gets a stack of its own when its name is not "
            "pinned (unset DEVENV_PROJECT_NAME / name in devenv.toml, or pin another); `devenv ls` lists the stacks "
            "and their machines.",
        )
    if Path(other.path).exists():
        return ForeignStack(
            f"the stack {name!r} belongs to the checkout {other.path}, not to this one ({root}); devenv never "
            f"{action} another checkout's stack.",
            f"run devenv in {other.path} for that stack, or give this checkout its own: DEVENV_PROJECT_NAME=NAME "
            "(or name in a devenv.toml of its own); `devenv ls` lists the stacks.",
        )
    return ForeignStack(
        f"the stack {name!r} belongs to the checkout {other.path}, which no longer exists; devenv never {action} "
        "another checkout's stack.",
        "`devenv down --gone` removes the stacks of checkouts that are gone (it asks first); `devenv ls` lists them.",
    )


def guard(runtime: Runtime, name: str, root: Path, action: str) -> None:
    """Refuse (ForeignStack) when the stack NAME belongs to another checkout than ROOT on this machine."""
    machine = runtime.machine[0]
    other = foreign_owner(runtime.stack_labels(name), root, machine=machine)
    if other is not None:
        raise refusal(name, other, root, action, machine=machine)


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
    machine = runtime.machine[0]
    seen: list[Mapping[str, str]] = list(known)
    mine_only = {(o.path, o.machine) if o else None for o in map(owner_of, seen)} == {(str(root), machine)}
    if not (seen and mine_only):
        seen = list(runtime.stack_labels(name))
    other = foreign_owner(seen, root, machine=machine)
    if other is None:
        return Claim(name)
    if pinned:
        raise refusal(name, other, root, "starts, resets or removes", machine=machine)
    mine = next(
        (
            candidate
            for candidate in (suffixed(name, root, length, machine) for length in (4, 6, 8, 12, 16))  # clash: longer
            if foreign_owner(runtime.stack_labels(candidate), root, machine=machine) is None
        ),
        None,
    )
    if mine is None:
        raise refusal(name, other, root, "starts, resets or removes", machine=machine)
    if not other.on_machine(machine):
        whose = f"the checkout {other.path} on the machine {other.where()}"
    else:
        gone = "" if Path(other.path).exists() else ", which no longer exists (`devenv down --gone` removes its stack)"
        whose = f"the checkout {other.path}{gone}"
    return Claim(
        mine,
        f"the stack name {name!r} belongs to {whose}; this checkout's stack is {mine!r} "
        "(kept in .devenv/checkout.json; DEVENV_PROJECT_NAME or name in devenv.toml pins one).",
    )


def port_space(runtime: Runtime) -> PortSpace:
    """Where the stack's host ports live: this machine's loopback, or a remote engine's host (devenv.engine.ports)."""
    address = runtime.host_address()
    return LocalPorts() if is_loopback(address) else EnginePorts(address, runtime.held_ports, runtime.host_answers)


def holder(runtime: Runtime | None, port: int) -> str:
    """Who holds host PORT, in words: a devenv stack and its checkout, another container, or another process."""
    holders = runtime.port_holders(port) if runtime is not None else []
    for _container, labels in holders:
        stack = labels.get(PROJECT_LABEL)
        if stack:
            owner = owner_of(labels)
            elsewhere = (
                f" on the machine {owner.where()}"
                if owner is not None and runtime is not None and not owner.on_machine(runtime.machine[0])
                else ""
            )
            return f"the devenv stack {stack!r}" + (f" of {owner.path}{elsewhere}" if owner else "")
    if holders:
        return f"the container {holders[0][0]!r}"
    address = runtime.host_address() if runtime is not None else "127.0.0.1"
    return "another process" if is_loopback(address) else f"a process on {address}, not a container"


def choose_port(space: PortSpace, port: int, owned: set[int], recorded: int | None) -> int | None:
    """A port for a service when PORT (not pinned) is taken in SPACE: the one recorded before if it is free, else a
    new one; None when PORT itself is fine (free, or this stack's)."""
    if port == 0 or port in owned or space.is_free(port):
        return None
    if recorded and recorded != port and (recorded in owned or space.is_free(recorded)):
        return recorded
    return space.free_port()


def pinned_port_error(service: str, port: int, runtime: Runtime | None, setting: str, where: str) -> PortInUse:
    """The error for a pinned host port that something else holds (WHERE: on which host)."""
    return PortInUse(
        f"host port {port} for {service} is already in use on {where}, by {holder(runtime, port)}.",
        f"stop what holds it (`ss -ltnp 'sport = :{port}'`, `devenv ls`) or set {setting} to a free port "
        "(or unset it: devenv then picks one).",
    )


BIND_FAILED = re.compile(
    r"(?:Bind for|listen tcp4?|bind host port for)\s*\[?([0-9a-fA-F.:]*?)\]?:(\d+)\b.*?"
    r"(port is already allocated|address already in use)",
    re.IGNORECASE,
)


def port_clash(runtime: Runtime, output: str) -> PortInUse | None:
    """`compose up` failed because a host port was taken after devenv chose it (a race, or a process on a remote
    engine's host that devenv cannot see): PortInUse naming the port and its holder (None: something else)."""
    found = BIND_FAILED.search(output)
    if found is None:
        return None
    port = int(found.group(2))
    where = runtime.host_address()
    return PortInUse(
        f"host port {port} is already in use on {where}, by {holder(runtime, port)}: Docker could not publish it; "
        "the containers it did create stay stopped.",
        "run `devenv up` again (a default port falls back to a free one), or set the service's port "
        "(DEVENV_POSTGRES_PORT, DEVENV_REDIS_PORT, DEVENV_SERVER_PORT) to a free one; `devenv ls` lists the stacks "
        "on this engine.",
    )


# -- devenv ls / down --gone ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StackInfo:
    """One stack as `devenv ls` shows it."""

    name: str
    checkout: str  # "" when the stack predates checkout labels
    gone: bool  # a checkout of this machine whose folder no longer exists
    state: str  # running | stopped | partial | volumes only
    ports: dict[str, int]
    volume_bytes: int | None
    created: str
    age_seconds: float | None
    ci: bool
    machine: str = ""  # the id of the machine its checkout is on ("" before machines were labelled)
    machine_name: str = ""
    here: bool = True  # its checkout is on this machine (a stack labelled before machines were: unknown, False)

    @property
    def running(self) -> bool:
        """Whether any of its service containers runs."""
        return self.state == "running" or self.state.startswith("partial")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkout": self.checkout or None,
            "machine": self.machine or None,
            "machine_name": self.machine_name or None,
            "this_machine": self.here,
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


def describe(stack: LabelledStack, machine: str, now: datetime | None = None) -> StackInfo:
    """A labelled stack, with its machine, its checkout's fate (told only for this MACHINE's) and its state."""
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
    owner = stack.labels.get(MACHINE_LABEL, "")
    here = bool(owner) and owner == machine
    return StackInfo(
        name=stack.name,
        checkout=checkout,
        gone=here and bool(checkout) and not Path(checkout).exists(),
        state=state,
        ports=stack.ports,
        volume_bytes=stack.volume_bytes,
        created=stack.created,
        age_seconds=_age(stack.created, now),
        ci=stack.labels.get("devenv.ci") == "true",
        machine=owner,
        machine_name=stack.labels.get(MACHINE_NAME_LABEL, ""),
        here=here,
    )


def list_stacks(runtime: Runtime) -> list[StackInfo]:
    """Every devenv stack on this engine, with its machine, checkout (or "gone"), state, ports, volume size, age."""
    return [describe(s, runtime.machine[0]) for s in runtime.labelled_stacks(ci_only=False, sizes=True)]


def gone_stacks(runtime: Runtime, *, running: bool = False) -> list[StackInfo]:
    """The stacks of this machine whose checkout folder no longer exists; a running one only with RUNNING.

    Another machine's stack is never one (its path means nothing here), nor one made before machines were
    labelled, nor one without a checkout label."""
    return [s for s in list_stacks(runtime) if s.gone and (running or not s.running)]


def remove_gone(runtime: Runtime, stacks: Iterable[StackInfo]) -> list[StackInfo]:
    """Remove STACKS (containers, networks and volumes, by label), checking each is still this machine's and gone."""
    removed = []
    for stack in stacks:
        if stack.gone and stack.here and stack.machine == runtime.machine[0] and not Path(stack.checkout).exists():
            runtime.remove_labelled(stack.name)
            top = Path(stack.checkout) / STATE_DIR
            for state_dir in (top, top / "stacks" / stack.name):  # its env files, wherever its state was
                shutil.rmtree(secrets_dir(state_dir), ignore_errors=True)
            runtime.remove_images(stack.name, stack.checkout)
            removed.append(replace(stack, state="removed"))
    return removed
