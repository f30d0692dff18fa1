"""The journey as a self-contained HTML page where the arrow keys move the packet (replay --html),
tested in headless Chromium: load the page, press the keys, take screenshots, read the page."""

from __future__ import annotations

import re
import time
import struct

import pytest

from browser import Browser
from flowviz.correlate import Correlator
from flowviz.pipeline import collect
from flowviz.render.html import journeys_html
from flowviz.render.svg import journey_with_reply
from flowviz.sources.replay import ReplaySource
from support import flowviz, sample
from test_hostile import hostile_picture


def swarm_pair():
    src = ReplaySource([sample("swarm-ingress.pcapng")])
    return journey_with_reply(collect(src, Correlator(topology=src.topology)))


def test_the_page_is_self_contained_and_its_data_cannot_close_its_script(tmp_path):
    page = journeys_html(swarm_pair())
    assert "<svg" in page and "<?xml" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)      # nothing fetched
    text = hostile_picture(tmp_path, "--html")
    data = text.split('<script id="hops" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "</" not in data and "\x1b" not in text
    assert "\\x1b" in text   # the names are there, their escapes made visible


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_arrow_keys_step_the_packet_along_the_path(browser, tmp_path):
    page = tmp_path / "ingress.html"
    r = flowviz("replay", sample("swarm-ingress.pcapng"), "--json", "--html", str(page))
    assert r.returncode == 0, r.stderr
    browser.open(str(page))
    hops = browser.eval("JSON.parse(document.getElementById('hops').textContent).length")
    assert hops == 30                                                 # 15 hops each way
    assert browser.eval("document.body.dataset.hop") == "0"
    first = browser.screenshot(str(tmp_path / "0.png"))
    start = browser.eval("document.getElementById('packet').getAttribute('transform')")
    for _ in range(9):
        browser.press("ArrowRight")
    assert browser.eval("document.body.dataset.hop") == "9"
    caption = browser.eval("document.getElementById('caption').textContent")
    assert caption.startswith("10/30") and "node1/eth0 tx" in caption and "encap vni 4096" in caption
    assert browser.eval("document.getElementById('packet').getAttribute('fill')") == "#1f5fbf"   # wrapped
    moved = browser.eval("document.getElementById('packet').getAttribute('transform')")
    assert moved != start
    time.sleep(0.5)                                                   # the dot glides: let it arrive
    ninth = browser.screenshot(str(tmp_path / "9.png"))
    assert png_size(first) == png_size(ninth) and first != ninth      # the picture changed where the dot is
    browser.press("ArrowLeft")
    assert browser.eval("document.body.dataset.hop") == "8"
    browser.press("End")
    assert browser.eval("document.body.dataset.hop") == "29"
    assert "deliver 192.168.21.11:40001" in browser.eval("document.getElementById('caption').textContent")
    browser.press("ArrowRight")                                       # past the end: stays
    assert browser.eval("document.body.dataset.hop") == "29"
    browser.press("Home")
    assert browser.eval("document.body.dataset.hop") == "0"
