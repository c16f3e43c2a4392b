"""Render the report in headless Chromium: every image and every movie must load; keep a screenshot.

Chromium is driven through its DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages ending in
a NUL byte on file descriptors 3 and 4), so no driver package or network port is needed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium) is not installed"),
]


class Chromium:
    """A headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="v1recon-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def map_fds() -> None:  # runs in the child: the protocol expects commands on fd 3, replies on fd 4
            read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            close_fds=False,  # the pipe ends are close-on-exec; only the dup2'd fds 3 and 4 are inherited
            preexec_fn=map_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0
        self.session = self._attach()

    def _attach(self) -> str:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages:
                reply = self.send("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True})
                return reply["sessionId"]
            time.sleep(0.1)
        raise RuntimeError("Chromium opened no page")

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.send(method, params, self.session)

    def evaluate(self, expression: str):
        reply = self.page("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._to_child)
            os.close(self._from_child)
            shutil.rmtree(self.profile, ignore_errors=True)


# Waits for the page's load event, then for every video to have decoded a frame or failed (at most 20 s).
MEDIA_CHECK = """
new Promise(resolve => {
  const report = () => resolve({
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
    videos: [...document.querySelectorAll('video')].map(v => ({label: v.getAttribute('aria-label'),
      ready: v.readyState, error: v.error ? v.error.code : null, width: v.videoWidth})),
    height: document.documentElement.scrollHeight,
  });
  const poll = (left) => {
    const vids = [...document.querySelectorAll('video')];
    if (left <= 0 || vids.every(v => v.readyState >= 2 || v.error)) { report(); return; }
    setTimeout(() => poll(left - 100), 100);
  };
  if (document.readyState === 'complete') poll(20000);
  else window.addEventListener('load', () => poll(20000));
})
"""


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium()
    yield chromium
    chromium.close()


def test_report_media_load_in_chromium(tmp_path, browser):
    from test_report import make_run

    from v1recon.report import write_report

    page_path = write_report(make_run(tmp_path), compute=False)
    browser.page("Page.enable")
    browser.page("Page.navigate", {"url": page_path.resolve().as_uri()})
    state = browser.evaluate(MEDIA_CHECK)

    assert state["images"], "the report shows no images"
    broken = [i["alt"] for i in state["images"] if not i["complete"] or i["width"] == 0]
    assert not broken, f"images that did not load: {broken}"
    assert len(state["videos"]) == 2
    bad = [v for v in state["videos"] if v["error"] is not None or v["ready"] < 2 or v["width"] == 0]
    assert not bad, f"movies that did not load: {bad}"

    # Keep a picture of the whole page for a person to look at.
    ARTIFACTS.mkdir(exist_ok=True)
    browser.page(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": min(int(state["height"]), 12000), "deviceScaleFactor": 1, "mobile": False},
    )
    shot = browser.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (ARTIFACTS / "report.png").write_bytes(base64.b64decode(shot["data"]))
