"""Open the dashboard in a real headless chromium: no JS errors, every row and every plot rendered.

Skipped only where no chromium binary is installed (``make browser`` installs Debian's). The full-page
screenshot is kept as an artifact in ``artifacts/dashboard.png`` (git-ignored) and in pytest's tmp path.
"""

import shutil
from pathlib import Path

import pytest
from fabricate import make_run, make_runs_tree

from ttfs_lab.report import build_dashboard, find_runs

ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_dashboard_renders_in_chromium(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed: run make browser")
    sync_api = pytest.importorskip("playwright.sync_api")

    root = tmp_path / "runs"
    tree = make_runs_tree(root)
    make_run(root, "20250105-evil", name='<img src=x onerror=alert(1)><script>alert(2)</script>',
             acc=0.95, decision_step=3.9, config={"model": {"pool": "max"}})
    runs = find_runs([root])
    out = build_dashboard(runs, tmp_path / "compare.html", ablation_tables=[tree["ablation"]])

    errors, dialogs = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            local = ("file:", "data:", "blob:")
            page.on("request", lambda r: None if r.url.startswith(local) else errors.append(f"network: {r.url}"))
            page.goto(out.as_uri(), wait_until="load", timeout=20_000)
            page.wait_for_function(
                "document.querySelectorAll('.plot').length > 0 && "
                "[...document.querySelectorAll('.plot')].every(d => d.querySelector('svg.main-svg'))",
                timeout=15_000,
            )
            n_rows = page.locator("#runs-table tr[data-run-id]").count()
            plots = page.evaluate(
                "[...document.querySelectorAll('.plot')].map(d => [d.id, d.querySelectorAll('svg.main-svg').length,"
                " d.querySelectorAll('.trace, .bars .point, .scatterlayer path').length])"
            )
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            # a click on a numeric header sorts best-first, keeps every row, runs without missing values first
            page.locator("#runs-table th", has_text="test acc").click()
            order = page.eval_on_selector_all("#runs-table tr[data-run-id]", "rs => rs.map(r => r.dataset.runId)")
        finally:
            browser.close()

    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(shot, artifacts / "dashboard.png")

    assert errors == []
    assert dialogs == []  # the run name's markup was not executed
    assert n_rows == len(runs) == 8
    assert sorted(order) == sorted(p.name for p in runs)
    assert order[:4] == ["20250101-ettfs_twd", "20250101-ettfs_first", "20250101-kaiming_twd", "20250105-evil"]
    assert [pid for pid, _, _ in plots] == [
        "plot-curves", "plot-pareto", "plot-acc-vs-step", "plot-firing", "plot-spike-hist",
        "plot-ablation-components",
    ]
    for pid, n_svg, n_marks in plots:
        assert n_svg >= 1 and n_marks > 0, f"{pid} did not render data"
    assert shot.stat().st_size > 50_000
