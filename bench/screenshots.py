"""Screenshots of the main pages as a person first sees them (the viewport, not the whole page),
at 1280 and 390 px, light scheme, for the interface's before/after record (docs/screenshots/).

    .venv/bin/python -m bench.screenshots BASE_URL OUTDIR PREFIX

against a running portal with the sample data (`make run` serves http://127.0.0.1:5000), signed in
as Alice, owner of Acme Corp. Uses Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

PAGES = {"dashboard": "/t/acme-corp/", "devices": "/t/acme-corp/devices/", "members": "/t/acme-corp/members/",
         "roles": "/t/acme-corp/roles/", "settings": "/t/acme-corp/settings/", "account": "/account/"}
WIDTHS = {1280: 800, 390: 844}
ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]


def main(base_url: str, outdir: str, prefix: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("SEED_PASSWORD", "portal-demo-2026")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
                                    headless=True, args=ARGS)
        context = browser.new_context(base_url=base_url, color_scheme="light")
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill("alice@acme.com")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("networkidle")
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            for name, path in PAGES.items():
                page.goto(path)
                page.wait_for_load_state("networkidle")
                target = out / f"{prefix}-{name}-{width}.png"
                page.screenshot(path=str(target))
                print(target, page.url)
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
