"""The web page shows a failed entry's fleet keys (tags, after) on its card, and a phone-wide
window does not scroll sideways. Headless chromium, as in test_serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import RunningFleet, Workspace
from tests.serve.test_serve import CHROMIUM, Browser, sim, start, stop, wait_for

__all__ = ["sim"]  # the fixture: three encrypted TVs running

FLOW = """\
name: warm-up
targets: tvs
tags: rollout
steps:
  - name: volume
    number.volume: 7
  - name: bad input
    select.input: HDMI 9
    after: volume
    on_failure: continue
    tags: ir
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_a_failure_card_shows_its_tags_and_after_readably_on_a_phone(
    sim: tuple[RunningFleet, Workspace], tmp_path: Path
) -> None:
    _, ws = sim
    s = start(ws)
    browser = Browser(tmp_path / "profile")
    try:
        assert s.call("/api/bulk", method="POST", body=FLOW.encode())[0] == 201
        assert ws.run("drain").returncode == 1  # HDMI 9 fails on each TV
        browser.open("about:blank")
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True})
        browser.send("Page.navigate", {"url": f"{s.url}/#token={s.token}"})
        flows = "[...document.querySelectorAll('.failure .flow')].map(e => e.textContent)"
        shown = wait_for(lambda: browser.text(flows))
        assert shown == ['tags: rollout, ir · after "volume" (whole batch), even if it fails'] * 3
        assert browser.text("document.documentElement.scrollWidth") <= 360
    finally:
        browser.close()
        assert s.token not in stop(s)
