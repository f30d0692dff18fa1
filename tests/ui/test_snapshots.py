"""What the swarm ingress replay looks like at its DNAT, ENCAP and delivery hops."""

from __future__ import annotations

import pytest

from uitools import loaded

SIZE = (170, 50)


def steps(n: int):
    async def run_before(pilot) -> None:
        await loaded(pilot)
        for _ in range(n):
            await pilot.press("right")
        await pilot.pause(0.2)
    return run_before


@pytest.mark.parametrize("name,hop", [("dnat", 2), ("encap", 9), ("deliver", 14)])
def test_swarm_ingress_at(snap_compare, make_app, name, hop):
    app = make_app("swarm-ingress.pcapng")
    assert snap_compare(app, terminal_size=SIZE, run_before=steps(hop))


def test_bytes_key_draws_a_plain_hop_as_bytes(snap_compare, make_app):
    """b: the packet panel draws the frame's bytes at any hop (here the client's first sighting)."""
    async def run_before(pilot) -> None:
        await loaded(pilot)
        await pilot.press("b")
        await pilot.pause(0.2)
    assert snap_compare(make_app("swarm-ingress.pcapng"), terminal_size=SIZE, run_before=run_before)
