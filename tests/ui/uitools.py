"""Helpers for driving the app in UI tests."""

from __future__ import annotations


async def loaded(pilot, timeout: float = 10.0) -> None:
    """Wait until the app has every journey of a replay and shows one."""
    app = pilot.app
    waited = 0.0
    while not (app.finished and app.current is not None):
        await pilot.pause(0.05)
        waited += 0.05
        if waited > timeout:
            raise AssertionError("the replay never finished loading")
    await pilot.pause(0.1)
