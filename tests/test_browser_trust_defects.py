"""Issue 22's visual defects, measured in Chromium at 390 px (and the settings form at 1280 px):
a role name broken inside a word in the switcher, a site name cut under its bar, checkboxes
above their labels, chart axis text shrunk to about 6 px. One signed-in context per person."""
from __future__ import annotations

import pytest

from browser_support import TIMEOUT_MS, open_tab, sign_in
from conftest import SEED_PASSWORD

pytestmark = pytest.mark.browser

# The number of line boxes an element's text takes.
LINES = """el => { const r = document.createRange(); r.selectNodeContents(el);
  return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"""


@pytest.fixture
def phone(chromium, live_server):
    with open_tab(chromium, live_server, viewport={"width": 390, "height": 844}) as tab:
        yield tab.page


def test_switcher_dashboard_and_charts_at_390(phone):
    """#9 "Vie wer" and "Acme Headquarte", #13 chart axis text of about 6 px."""
    from playwright.sync_api import expect
    page = phone
    sign_in(page, "consultant@external.com", SEED_PASSWORD)  # admin, member and viewer in four tenants
    page.goto("/t/acme-corp/")
    page.get_by_role("button", name="Menu").click()  # on a phone the organization menu is in the drawer
    page.locator(".switcher-toggle").first.click()
    roles = page.locator("#switcher-list button > .muted")
    expect(roles.first).to_be_visible()
    for i in range(roles.count()):
        role = roles.nth(i)
        assert role.evaluate(LINES) == 1, f"{role.inner_text()!r} breaks across lines"
    page.keyboard.press("Escape")

    # Each site's bar: the label ends before the bar starts, and the whole name is in the title.
    per_site = page.locator("svg.chart[aria-label='Devices per site'] a")
    assert per_site.count() == 2
    for i in range(per_site.count()):
        link = per_site.nth(i)
        assert link.evaluate("a => { const t = a.querySelector('text'); const b = t.getBBox();"
                             " return b.x + b.width <= +a.querySelector('rect').getAttribute('x'); }")
    titles = per_site.locator("title").all_text_contents()
    assert any(t.startswith("Acme Headquarters") for t in titles)

    # Every chart's text renders at 11 px or more: SVG text scaled by its box, HTML axis labels as set.
    sizes = page.evaluate("""() => {
      const out = [];
      for (const svg of document.querySelectorAll('svg.chart')) {
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        for (const t of svg.querySelectorAll('text'))
          out.push(['svg ' + t.textContent, parseFloat(getComputedStyle(t).fontSize) * scale]);
      }
      for (const s of document.querySelectorAll('.chart-x span, .chart-y span'))
        out.push(['axis ' + s.textContent, s.getBoundingClientRect().height && parseFloat(getComputedStyle(s).fontSize)]);
      return out; }""")
    assert any(name.startswith("axis ") for name, _ in sizes)
    small = [(name, round(px, 1)) for name, px in sizes if px < 11]
    assert not small, small
    # The axis labels stay inside the page (no sideways scroll).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.parametrize("width", [1280, 390])
def test_security_policy_checkboxes_sit_beside_their_labels(chromium, live_server, width):
    """#9: each checkbox of the organization's security policy on the line of its label."""
    context = chromium.new_context(base_url=live_server, viewport={"width": width, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, "alice@acme.com", SEED_PASSWORD)
        page.goto("/t/acme-corp/settings/security")
        for name in ("Require two-factor authentication", "Let those who read the audit log see members"):
            box = page.get_by_role("checkbox", name=name)
            label = page.locator(f"label[for='{box.get_attribute('id')}']")
            b, text = box.bounding_box(), label.evaluate(
                "l => { const w = document.createTreeWalker(l, NodeFilter.SHOW_TEXT); const rs = []; let n;"
                " while ((n = w.nextNode())) if (n.textContent.trim()) { const r = document.createRange();"
                " r.selectNodeContents(n); rs.push(...r.getClientRects()); }"
                " return {x: rs[0].x, y: rs[0].y, h: rs[0].height}; }")
            assert abs((b["y"] + b["height"] / 2) - (text["y"] + text["h"] / 2)) < 8, name  # one line
            assert b["x"] <= text["x"], name  # the box first
    finally:
        context.close()
