"""Host port checks: a taken port names the port, the service and the setting to change."""

from __future__ import annotations

import pytest

from devenv.core.errors import PortInUse
from devenv.engine.ports import PortClaim, check_ports, port_is_free


def test_taken_port_is_reported_with_setting(held_port: int) -> None:
    assert not port_is_free(held_port)
    with pytest.raises(PortInUse) as info:
        check_ports([PortClaim("postgres", held_port, "DEVENV_POSTGRES_PORT")])
    assert str(held_port) in info.value.message and "postgres" in info.value.message
    assert info.value.hint and "DEVENV_POSTGRES_PORT" in info.value.hint
    assert info.value.exit_code == 2


def test_port_held_by_this_stack_is_fine(held_port: int) -> None:
    assert not port_is_free(held_port)  # taken, but by this stack: no error
    assert check_ports([PortClaim("postgres", held_port, "x")], owned=[held_port]) is None
    asked: list[bool] = []
    owned = lambda: asked.append(True) or [held_port]  # noqa: E731 - the engine is asked only for a taken port
    assert check_ports([PortClaim("postgres", held_port, "x")], owned=owned) is None
    assert asked == [True]


def test_ephemeral_and_duplicate_claims() -> None:
    check_ports([PortClaim("postgres", 0, "x"), PortClaim("redis", 0, "y")])
    with pytest.raises(PortInUse, match="claimed by both postgres and redis"):
        check_ports([PortClaim("postgres", 1, "x"), PortClaim("redis", 1, "y")])
