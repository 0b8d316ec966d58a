"""Soak: 20 cycles of up -> write a row -> reset -> down; every reset really removes the row; nothing is left."""

from __future__ import annotations

import pytest

from tests.integration.helpers import ExampleProject

CYCLES = 20


@pytest.mark.slow
def test_twenty_cycles_leave_nothing_behind(example: ExampleProject) -> None:
    for cycle in range(CYCLES):
        example.devenv("up", check=True)
        text = f"soak cycle {cycle}"
        status, _ = example.http("POST", "/v1/quotes", {"author": "soak", "text": text})
        assert status == 201, cycle
        example.devenv("reset", "--yes", check=True)
        status, body = example.http("GET", "/v1/quotes")
        assert status == 200 and text not in str(body), cycle
        example.devenv("down", check=True)
        assert example.resources()["containers"] == [], cycle
    example.devenv("down", "--volumes", "--yes", check=True)
    assert example.resources() == {"containers": [], "networks": [], "volumes": []}
