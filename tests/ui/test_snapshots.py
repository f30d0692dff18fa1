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
