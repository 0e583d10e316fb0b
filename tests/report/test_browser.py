"""Every kind of report in a real browser: headless Chromium (Debian's `chromium`), at
desktop width and at phone width, with no console error, every image decoded, nothing
fetched from anywhere, no sideways scrolling on a phone — and the bars of
`mnist_cnn_bn`'s run report: at most 2 MB, rendered in at most 2 s.

Chromium is installed by `bash scripts/ensure_chromium.sh` (which `make test` runs); when
it is missing the session tries that script once, and the tests skip, saying why, only
when it cannot be installed. Set TRAINLAB_REPORT_SHOTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

from .chromium import Browser, find_chromium

WIDTHS = (1280, 390)  # a laptop, a phone (iPhone 12-15 CSS width)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    executable = find_chromium()
    if executable is None:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure_chromium.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        executable = find_chromium()
        if executable is None:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"Chromium is not installed and cannot be installed here: {why}")
    with Browser(executable) as running:
        yield running


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go."""
    folder = os.environ.get("TRAINLAB_REPORT_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return tmp_path_factory.mktemp("screenshots")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def check_page(browser: Browser, page: Path, figures: int, shots: Path, name: str) -> list:
    """Render `page` at every width and assert what a reader needs; the renderings."""
    shown = []
    for width in WIDTHS:
        seen = browser.render(page, width, shots / f"{name}-{width}.png")
        where = f"{name} at {width} px"
        assert seen.errors == [], where
        assert seen.requests == [], where  # self-contained: nothing fetched
        assert len(seen.images) == figures and seen.undecoded == [], where
        assert all(i["width"] > 100 and i["height"] > 100 for i in seen.images), where
        assert seen.inner_width == width, where  # the viewport meta tag holds
        assert seen.scroll_width <= width, where  # no sideways scrolling
        assert seen.load_ms is not None and seen.load_ms < 2000, where
        assert _png_size(seen.screenshot) == (width, seen.height), where
        shown.append(seen)
    return shown


def test_every_kind_of_report_renders_cleanly_at_desktop_and_phone_width(browser, pages, shots):
    assert set(pages) >= {"run", "regression", "ablation", "tune", "compress", "doctor", "compare"}
    for name, written in pages.items():
        check_page(browser, written.out, written.figures, shots, name)


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body style="width:900px">'
        '<img alt="cut" src="data:image/png;base64,iVBORw0KGgo=">'
        '<img alt="remote" src="http://127.0.0.1:9/x.png">'
        "<script>console.error('boom'); missing();</script></body></html>"
    )
    seen = browser.render(page, 390)
    assert "boom" in seen.errors and any("missing is not defined" in e for e in seen.errors)
    assert {i["alt"] for i in seen.undecoded} == {"cut", "remote"}
    assert seen.requests == ["http://127.0.0.1:9/x.png"]
    assert seen.inner_width != 390 or seen.scroll_width > 390  # no viewport tag, too wide


def test_mnist_cnn_bn_run_report_is_small_and_fast(browser, shots, tmp_path, monkeypatch):
    import trainlab
    from trainlab.cli import _report_predictions
    from trainlab.report.html import report

    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    run = trainlab.train(EXAMPLES / "mnist_cnn_bn.yaml", ["train.epochs=1"], out=tmp_path / "cnn")
    written = report(
        run.run_dir, tmp_path / "cnn.html", predictions=_report_predictions(run.run_dir, "test")
    )
    assert written.bytes <= 2 * 2**20
    assert written.figures == 3  # loss and accuracy curves, confusion matrix
    desktop, phone = check_page(browser, written.out, written.figures, shots, "mnist_cnn_bn")
    assert max(desktop.load_ms, phone.load_ms) <= 2000
