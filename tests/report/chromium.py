"""Headless Chromium driven over the DevTools protocol, with no Python dependency.

Chromium's `--remote-debugging-pipe` speaks the DevTools protocol over two inherited file
descriptors (3: commands in, 4: events and replies out), each message a JSON object ended
by a NUL byte — no websocket client needed. `Browser.render` opens one page, records
console errors, uncaught exceptions and every network request, and reports what the
report tests check: how long the page took to load, whether each <img> decoded, whether
the page is wider than the window, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)

# What the page reports about itself once loaded (one Runtime.evaluate).
PROBE = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const imgs = [...document.images].map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));
  const svgs = document.querySelectorAll('svg').length;
  return {imgs, svgs, load_ms: nav ? nav.loadEventEnd - nav.startTime : null,
          scroll_width: document.documentElement.scrollWidth,
          inner_width: window.innerWidth, title: document.title,
          height: document.documentElement.scrollHeight};
})()"""


def find_chromium() -> str | None:
    """The Chromium executable ($TRAINLAB_CHROMIUM, /usr/bin/chromium…), or None."""
    for candidate in (os.environ.get("TRAINLAB_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _high(fd: int) -> int:
    """A copy of `fd` numbered 10 or above; `fd` itself is closed."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return copy


@dataclass
class Rendered:
    """What one page did in the browser."""

    url: str
    width: int
    load_ms: float | None
    images: list[dict[str, Any]]
    svgs: int
    scroll_width: int
    inner_width: int
    height: int
    title: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def undecoded(self) -> list[dict[str, Any]]:
        """The images that did not decode (no natural size)."""
        return [i for i in self.images if not (i["complete"] and i["width"] > 0)]


class Browser:
    """One headless Chromium process; pages open in fresh tabs, one at a time."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="trainlab-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends move above 9, so `3<&N 4>&M` can never overwrite one another
        to_browser_r, from_browser_w = (_high(fd) for fd in (to_browser_r, from_browser_w))
        # the launcher (Debian's /usr/bin/chromium is a shell script) inherits fds 3 and 4;
        # bash, not sh: dash's redirections take one-digit descriptors only
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self._proc = subprocess.Popen(
            ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={self._profile}"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        try:
            self.version = self.send("Browser.getVersion")["product"]
        except (RuntimeError, TimeoutError, OSError):
            self.close()  # no browser left running, no profile left behind
            raise

    # ------------------------------------------------------------------ protocol
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self._proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        """Block until the event `method` arrives for `session` (earlier ones count)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    # ------------------------------------------------------------------ pages
    def render(
        self, page: Path, width: int, screenshot: Path | None = None, height: int | None = None
    ) -> Rendered:
        """Open `page` in a new tab `width` CSS pixels wide; measure, probe, screenshot
        (the whole page, or its first `height` pixels)."""
        url = Path(page).resolve().as_uri()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session)
            mobile = width < 600
            self.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height or (844 if mobile else 900),
                deviceScaleFactor=1,
                mobile=mobile,
            )
            self._events.clear()
            self.send("Page.navigate", session, url=url)
            self.wait_for("Page.loadEventFired", session)
            probe = self.send("Runtime.evaluate", session, expression=PROBE, returnByValue=True)
            facts = probe["result"]["value"]
            result = Rendered(
                url=url,
                width=width,
                load_ms=facts["load_ms"],
                images=facts["imgs"],
                svgs=facts["svgs"],
                scroll_width=facts["scroll_width"],
                inner_width=facts["inner_width"],
                height=facts["height"],
                title=facts["title"],
            )
            if screenshot is not None:
                shot = self.send(
                    "Page.captureScreenshot",
                    session,
                    format="png",
                    captureBeyondViewport=height is None,
                )
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                result.screenshot = screenshot
            self._collect(session, url, result)
            return result
        finally:
            self.send("Target.closeTarget", targetId=target)

    def _collect(self, session: str, url: str, result: Rendered) -> None:
        """Console errors, exceptions and requests other than the page itself."""
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = params.get("args", [])
                result.errors.append(" ".join(str(a.get("value", a)) for a in args))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                thrown = details.get("exception", {}).get("description")
                result.errors.append(thrown or details.get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                result.errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                requested = params["request"]["url"]
                if requested != url and not requested.startswith("data:"):
                    result.requests.append(requested)
        self._events = [e for e in self._events if e.get("sessionId") != session]

    def close(self) -> None:
        """End the browser and remove its profile."""
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """`python -m tests.report.chromium PAGE.html OUT.png [WIDTH] [HEIGHT]`: a screenshot
    (how docs/report_run.png and docs/report_ablation.png are made)."""
    import sys

    page, out = Path(sys.argv[1]), Path(sys.argv[2])
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1280
    height = int(sys.argv[4]) if len(sys.argv) > 4 else None
    executable = find_chromium()
    if executable is None:
        raise SystemExit("no Chromium: run `bash scripts/ensure_chromium.sh`")
    with Browser(executable) as browser:
        shown = browser.render(page, width, out, height)
    print(f"{out}: {width} px wide, loaded in {shown.load_ms:.0f} ms, errors {shown.errors}")


if __name__ == "__main__":
    main()
