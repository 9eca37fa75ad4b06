"""Screenshot of the dashboard's ablation section for docs/results.md (python docs/dashboard_screenshot.py).

Opens the dashboard that ``ttfs-lab compare`` wrote in headless chromium (``make browser`` installs Debian's;
playwright comes with the dev extras), waits for every plot to render and saves the ablation table and its
component chart as a PNG. The dashboard itself is the record; this only pictures it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium found: run make browser (Debian's chromium)")


def screenshot(html: Path, out: Path, width: int = 1400) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_function("[...document.querySelectorAll('.plot')].every(d => d.querySelector('svg.main-svg'))",
                                   timeout=60_000)
            sections = page.locator('section[id^="ablation-"]')
            if not sections.count():
                raise SystemExit(f"{html}: the dashboard has no ablation section; pass --ablation to ttfs-lab compare")
            out.parent.mkdir(parents=True, exist_ok=True)
            sections.first.screenshot(path=str(out))
        finally:
            browser.close()
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="reports/reproduce-fashion_mnist.html")
    parser.add_argument("--out", default="docs/figures/ablation_dashboard.png")
    args = parser.parse_args()
    html = Path(args.html)
    if not html.is_file():
        raise SystemExit(f"{html}: no dashboard there; write it with ttfs-lab compare (make reproduce does)")
    screenshot(html, Path(args.out))


if __name__ == "__main__":
    main()
