"""How fast the code explorer loads and decodes, in headless Chromium (docs/explorer.md).

    python benchmarks/bench_explorer.py output/3D_explorer.html output/4x4_explorer.html

For each page: its bytes and where they go, the time until it is ready (from the start of
navigation: reading the file, decoding its data, the first drawing), and the in-page decoder's time for one code (median
of 31), over --repeats fresh loads. Timings are reported, never asserted. `Browser`, the small
DevTools-protocol driver used here, is also what tests/test_explorer.py drives the page with.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Headless, offline and quiet: without the networking switches Chromium tries the network many times.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
KEYS = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40, "Home": 36, "Enter": 13}


Message = dict[str, Any]  # one DevTools protocol message, as JSON decodes it


class PageError(RuntimeError):
    """Chromium answered a command with an error, or a script in the page threw."""


class Browser:
    """One headless Chromium tab, driven over the DevTools protocol on a pipe: no library, no port.

    The window is `width` x `height` CSS pixels; `mobile` emulates a phone (touch, the viewport
    meta tag honoured). Errors the page throws or logs are collected in `errors`.
    """

    def __init__(self, width: int, height: int, mobile: bool = False, scale: float = 1):
        if CHROMIUM is None:
            raise PageError("no Chromium here: apt-get install chromium")
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_chromium, self._out = os.pipe()
        self._in, from_chromium = os.pipe()

        def pipes_as_3_and_4():  # Chromium reads commands on fd 3 and answers on fd 4
            os.dup2(to_chromium, 3)
            os.dup2(from_chromium, 4)

        self._process = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pipes_as_3_and_4,
            pass_fds=(3, 4),
        )
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer, self._next_id = b"", 0
        self.events: list[Message] = []
        self.errors: list[str] = []
        self.session: str | None = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=mobile
        )
        if mobile:
            self.send("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)

    def _message(self) -> Message:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise PageError("Chromium closed its pipe")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        message: Message = json.loads(text)
        if message.get("method") == "Runtime.exceptionThrown":
            details = message["params"]["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in message["params"]["args"]))
        return message

    def send(self, method: str, **params: Any) -> Message:
        """Run one protocol command in the tab; its result."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            command["sessionId"] = self.session
        os.write(self._out, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise PageError(f"{method}: {message['error']}")
                result: Message = message["result"]
                return result
            self.events.append(message)

    def wait_for(self, event: str) -> Message:
        for k, message in enumerate(self.events):
            if message.get("method") == event:
                return self.events.pop(k)
        while (message := self._message()).get("method") != event:
            self.events.append(message)
        return message

    def open(self, url: str) -> dict[str, Any]:
        """Load `url` and wait until the explorer is ready; the page's `explorer.ready` value."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        ready: dict[str, Any] = self.evaluate("explorer.ready")
        return ready

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise PageError(details.get("exception", {}).get("description") or details["text"])
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float, button: str = "left", **extra: Any) -> None:
        """A real mouse event: kind is mousePressed, mouseMoved, mouseReleased or mouseWheel."""
        buttons = {"none": 0, "left": 1, "right": 2, "middle": 4}[button] if kind != "mouseReleased" else 0
        self.send(
            "Input.dispatchMouseEvent",
            type=kind,
            x=x,
            y=y,
            button=button,
            buttons=buttons,
            clickCount=extra.pop("clickCount", 1 if kind in ("mousePressed", "mouseReleased") else 0),
            **extra,
        )

    def click(self, x: float, y: float, button: str = "left", count: int = 1) -> None:
        for n in range(1, count + 1):
            self.mouse("mousePressed", x, y, button, clickCount=n)
            self.mouse("mouseReleased", x, y, button, clickCount=n)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 5, **modifiers: Any) -> None:
        self.mouse("mousePressed", *start, **modifiers)
        for k in range(1, steps + 1):
            self.mouse(
                "mouseMoved",
                start[0] + (end[0] - start[0]) * k / steps,
                start[1] + (end[1] - start[1]) * k / steps,
                **modifiers,
            )
        self.mouse("mouseReleased", *end, **modifiers)

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        self.mouse("mouseWheel", x, y, "none", deltaX=0, deltaY=delta_y)

    def touch(self, kind: str, *points: tuple[float, float]) -> None:
        """Touch points (touchStart, touchMove, touchEnd), one id each."""
        self.send(
            "Input.dispatchTouchEvent",
            type=kind,
            touchPoints=[{"x": x, "y": y, "id": k} for k, (x, y) in enumerate(points)],
        )
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # moves come by frame

    def key(self, key: str, modifiers: int = 0) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                modifiers=modifiers,
                windowsVirtualKeyCode=KEYS.get(key, 0),
            )

    def screenshot(self, path: Path) -> Path:
        Path(path).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return Path(path)

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def measure(page: Path, repeats: int) -> dict:
    """Bytes, ready times and median decode times of `repeats` fresh loads of `page`."""
    ready, decode = [], []
    with Browser(1400, 900) as browser:
        for _ in range(repeats):
            ready.append(browser.open(page.resolve().as_uri())["readyMs"])
            decode.append(browser.evaluate("explorer.timeDecode(31)"))
        errors = browser.errors
    return {"page": str(page), "bytes": page.stat().st_size, "ready_ms": ready, "decode_ms": decode, "errors": errors}


def page_data(page: Path) -> dict:
    """The JSON block an explorer page (UTF-16, with a byte-order mark) reads its data from."""
    block = re.search(r'<script id="data" type="application/json">(.*?)</script>', page.read_text("utf-16"), re.S)
    if block is None:
        raise ValueError(f"{page} has no data block: it is not an explorer page")
    data: dict = json.loads(block[1])
    return data


def _characters(part: object) -> int:
    """The characters of a page's array, or of a dict of them and their numbers, as JSON has them."""
    if isinstance(part, dict):
        return sum(_characters(value) for value in part.values())
    return len(part) if isinstance(part, str) else len(json.dumps(part))


def where_the_bytes_go(page: Path) -> str:
    """The page's bytes by part (a UTF-16 page: two bytes a character, 47 bits of arrays in three),
    and the Rice-coded decoder's bits a weight, layer by layer."""
    data = page_data(page)
    if "images" not in data:
        return "not told for a page written before the images were rANS-coded"
    layers = data["decoder"]
    parts = {
        "test images": 2 * _characters(data["images"]),
        "codes": 2 * _characters(data["codes"]),
        "errors and labels": 2 * (len(data["errors"]) + len(data["labels"])),
        "decoder": sum(2 * len(layer[key]) for layer in layers for key in ("k", "unary", "low", "steps", "biases")),
    }
    weights = sum(layer["rows"] * layer["cols"] for layer in layers)
    rice = [
        8 * sum(int(layer[key].partition(",")[0]) for key in ("unary", "low")) / (layer["rows"] * layer["cols"])
        for layer in layers
    ]
    return (
        ", ".join(f"{name} {size / 1e6:.3f} MB" for name, size in parts.items())
        + f" ({8 * parts['decoder'] / weights:.2f} bits of page a weight; Rice bits a weight by layer "
        + ", ".join(f"{bits:.2f}" for bits in rice)
        + f"), the rest {(page.stat().st_size - sum(parts.values())) / 1e6:.3f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("pages", nargs="+", type=Path, help="M_explorer.html files the plot scripts wrote")
    p.add_argument("--repeats", type=int, default=5, help="fresh loads of each page (default 5)")
    args = p.parse_args(argv)
    for page in args.pages:
        if not page.is_file():
            print(f"error: {page} is not a file", file=sys.stderr)
            return 1
    if CHROMIUM is None:
        print("error: no Chromium here (apt-get install chromium)", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    for page in args.pages:
        r = measure(page, args.repeats)
        print(
            f"{r['page']}: {r['bytes']:,} bytes; ready after {min(r['ready_ms']):.0f} to {max(r['ready_ms']):.0f} ms "
            f"(median {statistics.median(r['ready_ms']):.0f}); decoding a code {min(r['decode_ms']):.1f} to "
            f"{max(r['decode_ms']):.1f} ms (median of 31 per load); errors: {r['errors'] or 'none'}"
        )
        print(f"  where the bytes go: {where_the_bytes_go(page)}")
    print(f"load average at the start: {load:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
