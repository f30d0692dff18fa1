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


async def walk_lesson(app, pilot, pick, *, limit: int = 400) -> None:
    """Continue a TeachApp to its end, answering each question with ``pick(question)`` (1-based)."""
    for _ in range(limit):
        if app.done:
            return
        q = app.question
        if q is not None and (app.walk_i, app.stop_i) not in app.answers:
            await pilot.press(str(pick(q)))
        await pilot.press("space")
        await pilot.pause()
    raise AssertionError("the lesson never ended")


def right_choice(q) -> int:
    return next(k for k, c in enumerate(q.choices, 1) if q.right(c))


def wrong_choice(q) -> int:
    return next(k for k, c in enumerate(q.choices, 1) if not q.right(c))
