"""Headless Chromium driven over the DevTools protocol, for the HTML page's test: load a file,
press keys, read the page, take screenshots. Only loopback: name resolution is switched off and
Chromium's own background traffic (updates, sync, metrics) is disabled."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from support import stop_group

KEYS = {"ArrowRight": 39, "ArrowLeft": 37, "ArrowDown": 40, "ArrowUp": 38, "Home": 36, "End": 35, " ": 32}


def chromium() -> str:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no headless Chromium: scripts/setup --tests installs chromium-headless-shell")


class Browser:
    def __init__(self, width: int = 1600, height: int = 1000):
        import websocket
        self.dir = tempfile.mkdtemp(prefix="flowviz-chromium-")
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self.dir}", f"--window-size={width},{height}", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--metrics-recording-only", "--disable-domain-reliability",
             "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)   # a group of its own: Debian's wrapper script does not exec it
        try:
            port = self._port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=20, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)

    def _port(self) -> int:
        path = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(path) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port")

    def call(self, method: str, **params):
        n = next(self._ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, path: str) -> None:
        self.call("Page.navigate", url="file://" + os.path.abspath(path))
        deadline = time.monotonic() + 20
        while self.eval("document.readyState") != "complete":
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.05)

    def eval(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def press(self, key: str) -> None:
        code = KEYS[key]
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code="Space" if key == " " else key,
                      windowsVirtualKeyCode=code, nativeVirtualKeyCode=code)

    def screenshot(self, path: str) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(png)
        return png

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        stop_group(self.proc, 10)   # the wrapper script's browser, zygotes and renderer too
        shutil.rmtree(self.dir, ignore_errors=True)

