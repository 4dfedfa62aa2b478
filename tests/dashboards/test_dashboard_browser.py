"""The pages in Debian's chromium (Playwright, headless): play, overlay pixels, keyboard decisions, charts.

Screenshots land in docs/images/ for docs/dashboards.md when EMOFORGE_DOC_SCREENSHOTS=1.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from dashboard_data import CHROMIUM, CHROMIUM_ARGS, IMAGES, STEP_PX, X0, square_box
from emoforge.dashboards.db import Database

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 980})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []


def until(page, expression: str, timeout_s: float = 10.0):
    """Poll a JS expression (page.evaluate is not subject to the page's CSP, unlike wait_for_function)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.03)
    raise AssertionError(f"timed out waiting for {expression}")


def open_clip(page, url: str, clip_id: str, annotator: str | None = None):
    page.goto("about:blank")  # a fresh document, not a hash change
    page.goto(f"{url}/audit#clip={clip_id}")
    if annotator:
        page.fill("#annotator", annotator)
        page.press("#annotator", "Enter")
        page.evaluate("document.activeElement.blur()")
    until(page, "document.body.dataset.ready === '1'")
    until(page, "document.getElementById('overlay').dataset.frame !== undefined && document.getElementById('overlay').dataset.frame !== ''")


def screenshot_array(page, selector: str) -> np.ndarray:
    from PIL import Image

    png = page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def step_to(page, frame: int):
    for _ in range(60):
        current = int(page.evaluate("document.getElementById('overlay').dataset.frame"))
        if current == frame and not page.evaluate("document.getElementById('video').seeking"):
            return
        page.keyboard.press("." if current < frame else ",")
        until(page, f"document.getElementById('overlay').dataset.frame !== '{current}'", 5)
    raise AssertionError(f"could not step to frame {frame}")


def check_frame_exact(page, frame: int):
    """Content and overlay agree: the square on screen is frame `frame`, the green box is its label."""
    width = page.evaluate("document.getElementById('overlay').width")  # video pixels
    page.keyboard.press("o")  # overlay off: the video alone
    plain = screenshot_array(page, "#player")
    page.keyboard.press("o")
    drawn = screenshot_array(page, "#player")
    scale = plain.shape[1] / width
    white = (plain.min(axis=2) > 200)
    columns = np.flatnonzero(white.sum(axis=0) > 10)
    content_frame = round((columns[0] / scale - X0) / STEP_PX)
    green = (drawn[..., 1] > 200) & (drawn[..., 0] < 120) & (drawn[..., 2] < 160)
    ys, xs = np.nonzero(green)
    x0, y0, x1, y1 = square_box(frame)
    assert content_frame == frame, (content_frame, frame)
    assert abs(xs.min() / scale - x0) <= 2 and abs(xs.max() / scale - x1) <= 2
    assert abs(ys.min() / scale - y0) <= 2 and abs(ys.max() / scale - y1) <= 2
    # the box is drawn exactly on the square's edges: green pixels sit on white/grey borders only
    assert green[int((y0 + y1) / 2 * scale), int(x0 * scale)] and green[int(y0 * scale), int((x0 + x1) / 2 * scale)]


def test_audit_plays_and_draws_labels_on_the_presented_frame(page, server, ids):
    open_clip(page, server.url, ids["cfr"])
    assert page.evaluate("document.getElementById('video').videoWidth") == 256
    page.keyboard.press(" ")
    until(page, "document.getElementById('video').currentTime > 0.5", 10)
    until(page, "Number(document.getElementById('overlay').dataset.frame) >= 10", 5)
    page.keyboard.press(" ")
    until(page, "document.getElementById('video').paused")
    for frame in (3, 17):
        step_to(page, frame)
        check_frame_exact(page, frame)
    page.screenshot(path=str(IMAGES / "dashboard-audit.png"))


def test_overlay_follows_the_frame_index_through_a_timeline_hole(page, server, ids):
    """Frames after a 0.2 s hole: k/25 would name the wrong frame; frame_time_s does not."""
    open_clip(page, server.url, ids["vfr"])
    for frame in (11, 12, 14):
        step_to(page, frame)
        media_time = float(page.evaluate("document.getElementById('overlay').dataset.mediaTime"))
        assert round(media_time * 25) != frame or frame < 12
        check_frame_exact(page, frame)
    page.locator("#clip-panel").screenshot(path=str(IMAGES / "dashboard-player.png"))


def test_keyboard_decisions_persist_across_a_restart(page, server, data_dir, ids):
    open_clip(page, server.url, ids["cfr"], annotator="alice")
    page.keyboard.press("a")
    until(page, f"document.body.dataset.lastDecision === '{ids['cfr']}:accept'")
    open_clip(page, server.url, ids["vfr"], annotator=None)
    page.keyboard.press("r")
    page.keyboard.press("2")  # the second reason
    until(page, f"document.body.dataset.lastDecision === '{ids['vfr']}:reject'")
    db = Database(f"sqlite:///{data_dir / 'dashboard.sqlite'}")
    rows = db.query("SELECT clip_id, annotator, decision, reason FROM decisions ORDER BY id")
    db.close()
    assert rows == [
        {"clip_id": ids["cfr"], "annotator": "alice", "decision": "accept", "reason": None},
        {"clip_id": ids["vfr"], "annotator": "alice", "decision": "reject", "reason": "wrong head pose"},
    ]
    server.restart()
    open_clip(page, server.url, ids["cfr"])
    history = page.locator("#history li").all_inner_texts()
    assert len(history) == 1 and "alice accept" in history[0]
    assert page.locator("tr.clip").count() == 2  # the unreviewed queue: the third clip and the rejected one
    page.locator("button[data-queue='all']").click()
    until(page, "document.querySelectorAll('tr.clip').length === 4")
    assert "alice: accept" in page.locator(f"tr.clip[data-clip='{ids['cfr']}']").inner_text()


def test_corpus_and_review_pages_render_their_charts(page, server, ids):
    page.goto(f"{server.url}/corpus")
    until(page, "document.body.dataset.ready === '1'")
    assert page.locator("svg.chart").count() >= 10
    funnel = page.locator("#funnel svg rect.bar")
    assert funnel.count() == 6
    widths = [float(funnel.nth(i).get_attribute("width")) for i in range(6)]
    assert widths[0] == max(widths) and widths[4] < widths[0]  # hours shrink down the funnel
    assert page.locator("#reasons svg rect.bar").count() == 3  # clip, scene and source reasons
    assert "scene: no face" in page.locator("#reasons").inner_text()
    assert page.locator("[data-chart='p95_abs_yaw_deg'] rect.bar").count() >= 2
    assert page.locator("#source-table tbody tr").count() == 3
    page.screenshot(path=str(IMAGES / "dashboard-corpus.png"), full_page=True)
    for annotator, votes in (("alice", ("accept", "accept", "flag")), ("bob", ("accept", "reject", "flag"))):
        for clip_id, decision in zip(ids["clips"], votes):
            post_decision(server.url, clip_id, annotator, decision)
    page.goto(f"{server.url}/review")
    until(page, "document.body.dataset.ready === '1'")
    assert "alice · bob" in page.locator("#agreement").inner_text()
    assert page.locator("#disagreements tbody tr").count() == 1
    page.screenshot(path=str(IMAGES / "dashboard-review.png"))


def post_decision(url: str, clip_id: str, annotator: str, decision: str):
    import json
    import urllib.request

    body = {"decision": decision, "reason": "wrong head pose" if decision == "reject" else None}
    request = urllib.request.Request(f"{url}/api/clips/{clip_id}/decisions", data=json.dumps(body).encode(), method="POST",
                                     headers={"X-Emoforge": "1", "X-Annotator": annotator, "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def test_a_script_in_a_title_stays_text(page, server, ids, xss_title):
    open_clip(page, server.url, ids["xss"])
    assert page.evaluate("window.__xss") is None
    assert page.locator("#clip-title").inner_text().endswith(xss_title)
    assert page.evaluate("document.querySelectorAll('img[src=x], #meta script, #clips script').length") == 0
    page.goto(f"{server.url}/corpus")
    until(page, "document.body.dataset.ready === '1'")
    assert xss_title in page.locator("#source-table").inner_text()
    assert page.evaluate("window.__xss") is None
