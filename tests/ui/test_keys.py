"""Every key the footer shows, pressed with Pilot on a replay of the swarm ingress capture."""

from __future__ import annotations

import io

import pytest

from flowviz.pcapfile import PcapNgWriter
from uitools import loaded

pytestmark = pytest.mark.asyncio


async def test_right_left_step_through_hops(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        assert app.hop == 0
        await pilot.press("right", "right", "right")
        assert app.hop == 3
        await pilot.press("left")
        assert app.hop == 2
        for _ in range(20):
            await pilot.press("right")
        assert app.hop == len(app.current.hops) - 1   # stops at the last hop
        hops = app.query_one("#hops")
        assert hops.cursor_row == app.hop


async def test_every_step_counts_and_the_packet_stays_in_view(make_app):
    """The hop table's cursor follows the packet; its highlight events must not pull it back."""
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 40)) as pilot:
        await loaded(pilot)
        seen = []
        for _ in range(len(app.current.hops) - 1):
            await pilot.press("right")
            seen.append(app.hop)
        assert seen == list(range(1, len(app.current.hops)))
        box, pathmap = app.query_one("#mapbox"), app.query_one("#map")
        assert box.scroll_y <= pathmap.marker_line < box.scroll_y + box.scrollable_content_region.height
        assert "●" in pathmap._lines(pathmap.size.width)[pathmap.marker_line].plain


async def test_space_plays_and_pauses(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        assert not app.playing
        await pilot.press("space")
        assert app.playing
        for _ in range(100):   # 2 hops/s: give it up to 10 s on a busy machine
            if app.hop >= 2:
                break
            await pilot.pause(0.1)
        assert app.hop >= 2
        await pilot.press("space")
        assert not app.playing
        hop = app.hop
        await pilot.pause(0.8)
        assert app.hop == hop


async def test_plus_minus_change_speed(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        assert app.speed == 2.0
        await pilot.press("plus")
        assert app.speed == 4.0
        await pilot.press("minus", "minus")
        assert app.speed == 1.0
        for _ in range(10):
            await pilot.press("minus")
        assert app.speed == 0.5
        assert "0.5 hops/s" in str(app.query_one("#status").render())


async def test_t_plays_in_real_time_scaled(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        await pilot.press("t")
        assert app.timed and "real time" in str(app.query_one("#status").render())
        j = app.current
        mean = j.hops[-1].dt_ns / (len(j.hops) - 1)
        assert app._delay() == pytest.approx((j.hops[1].dt_ns - j.hops[0].dt_ns) / mean / app.speed)
        await pilot.press("space")
        for _ in range(100):
            if app.hop >= 2:
                break
            await pilot.pause(0.1)
        assert app.hop >= 2   # it moves in timed mode too
        await pilot.press("t")
        assert not app.timed and app._delay() == 1 / app.speed


async def test_n_p_next_and_previous_packet(make_app):
    app = make_app("swarm-ingress.pcapng", "bridge-published.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        first = app.current.id
        ids = list(app.journeys)
        await pilot.press("n")
        assert app.current.id == ids[ids.index(first) + 1] and app.hop == 0
        await pilot.press("n", "n")
        assert app.current.id == ids[ids.index(first) + 3]
        await pilot.press("p")
        assert app.current.id == ids[ids.index(first) + 2]
        assert app.query_one("#journeys").cursor_row == ids.index(app.current.id)


async def test_e_toggles_the_explain_panel(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        box = app.query_one("#explainbox")
        assert box.display
        await pilot.press("right", "right")
        assert "DNAT rewrote the destination" in str(app.query_one("#explain").render())
        await pilot.press("e")
        assert not box.display
        await pilot.press("e")
        assert box.display


async def test_f_follows_the_latest_packet(make_app):
    app = make_app("swarm-ingress.pcapng", "macvlan.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        assert not app.follow
        await pilot.press("f")
        assert app.follow and app.current.id == list(app.journeys)[-1]
        assert "follow latest: on" in str(app.query_one("#status").render())


async def test_q_quits(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        assert app.return_code is None and app.is_running
        await pilot.press("q")
        await pilot.pause(0.2)
        assert app.return_code == 0 and not app.is_running
    assert not app.feeder.is_alive()   # the source was stopped and its thread joined


async def test_selecting_a_row_in_the_hop_table_moves_the_packet(make_app):
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        await pilot.click("#hops", offset=(10, 6))   # a few rows down
        await pilot.pause(0.2)
        assert app.hop == app.query_one("#hops").cursor_row and app.hop > 0


async def test_untrusted_names_are_shown_literally(make_app, tmp_path):
    """Interface and namespace names with markup and escape sequences are text, nothing more."""
    from flowviz.samples import MAC, tcp_frame
    evil_if = "[bold red]eth0[blink]\x1b[2J\x07"   # no "/": that would name a namespace
    evil_ns = "[link=http://x]ns%20"
    buf = io.BytesIO()
    w = PcapNgWriter(buf)
    a = w.interface(evil_if, 1, f"netns={evil_ns}")
    b = w.interface("eth1", 1, "netns=other")
    syn = tcp_frame(MAC["client"], MAC["n1eth0"], "10.0.0.1", "10.0.0.2", 1234, 80, ip_id=7, seq=1)
    w.packet(a, 1_000, syn, direction="tx")
    w.packet(b, 2_000, syn, direction="rx")
    path = tmp_path / "evil.pcapng"
    path.write_bytes(buf.getvalue())
    app = make_app(str(path))
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        shown_if = "[bold red]eth0[blink]\\x1b[2J\\x07"
        shown_ns = "[link=http://x]ns "
        table = app.query_one("#hops")
        row = table.get_row_at(0)
        assert row[3].plain == shown_if and row[2].plain.startswith(shown_ns)
        assert not row[3].spans and not row[2].spans   # no style came out of the name
        path_text = "\n".join(t.plain for t in app.query_one("#map")._lines(150))
        assert shown_if in path_text and "\x1b" not in path_text and "\x07" not in path_text
        detail = str(app.query_one("#detail").render())
        assert "\x1b" not in detail and "[bold red]eth0[blink]" in detail
        screen = app.export_screenshot()
        assert "\x1b[2J" not in screen


async def test_b_draws_bytes_and_s_saves_the_journey_as_svg(make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        await loaded(pilot)
        detail = app.query_one("#detail")
        assert "offset bytes" not in str(detail.render())
        await pilot.press("b")
        assert "offset bytes" in str(detail.render())
        await pilot.press("b")
        assert "offset bytes" not in str(detail.render())
        await pilot.press("s")
        await pilot.pause(0.1)
        assert (tmp_path / "flowviz-packet-1.svg").exists()
        await pilot.press("n", "s")   # the reply: saved with the request it answers, request first
        await pilot.pause(0.1)
    from flowviz.render.svg import journeys_svg
    req, rep = app.journeys[1], app.journeys[2]
    assert (tmp_path / "flowviz-packet-2.svg").read_text() == journeys_svg([req, rep])
    assert (tmp_path / "flowviz-packet-1.svg").read_text() == journeys_svg([req, rep])
