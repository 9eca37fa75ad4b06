"""The static parts of the comparison page: the HTML frame, its style sheet and the table-sorting script.

``PAGE`` is formatted by ``dashboard.build_dashboard`` with title, generated, nav, css, plotlyjs, sections and js.
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script>{plotlyjs}</script>
</head><body>
<header><h1>{title}</h1><div class="meta">generated {generated} · ttfs-lab</div><nav>{nav}</nav></header>
<main>
{sections}
</main>
<script>{js}</script>
</body></html>
"""

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d8dee4; --bg:#f6f8fa; --diff:#fff4c2; --odd:#ffd866; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
  background:var(--bg); }
header { background:#24292f; color:#fff; padding:14px 28px 10px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header .meta { color:#b6bec8; font-size:12px; margin:2px 0 8px; }
nav a { color:#c9e0ff; margin-right:14px; font-size:13px; text-decoration:none; }
nav a:hover { text-decoration:underline; }
main { max-width:1500px; margin:0 auto; padding:10px 24px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; margin:18px 0; padding:12px 18px 16px; }
h2 { font-size:17px; margin:4px 0 8px; font-weight:600; }
.note { color:var(--muted); font-size:12.5px; margin:0 0 10px; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-size:13px; width:100%; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f3f6; font-weight:600; white-space:nowrap; position:sticky; top:0; }
table.sortable th { cursor:pointer; user-select:none; }
table.sortable th:hover { background:#e4e9ee; }
td.num, th.num { text-align:right; white-space:nowrap; font-variant-numeric:tabular-nums; }
th.diff { background:#fbe7a1; }
td.diff { background:var(--diff); font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px; }
td.diff.odd { background:var(--odd); font-weight:600; }
td.diff.na { background:#f3f3f3; color:#999; }
tr:hover td { filter:brightness(0.97); }
tr.problem-row td { background:#fff0f0; }
tr.problem-row td.diff { background:#fbe3e3; }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px; }
.small { font-size:11px; color:var(--muted); }
.swatch { display:inline-block; width:12px; height:12px; border-radius:3px; margin-top:3px; }
.chip, .tag { display:inline-block; border:1px solid var(--line); border-radius:10px; padding:0 7px; margin:1px 2px;
  font-size:11.5px; background:#f6f8fa; white-space:nowrap; }
.tag { background:#eef4ff; border-color:#c8dafc; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff;
  background:#6e7781; }
.badge.finished, .badge.ok { background:#1a7f37; }
.badge.running { background:#0969da; }
.badge.partial, .badge.interrupted { background:#bf8700; }
.badge.failed, .badge.corrupt { background:#cf222e; }
.badge.incomplete { background:#8250df; }
.problem { color:#a40e26; font-size:12px; margin-top:3px; white-space:normal; overflow-wrap:anywhere; }
td.status { min-width:220px; max-width:380px; }
.nowrap { white-space:nowrap; }
.chip.off { color:#8c959f; text-decoration:line-through; background:#fff; }
.empty { color:var(--muted); font-style:italic; }
.plot { width:100%; min-height:300px; }
table.ablation { margin-top:10px; }
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir ? (th.dataset.dir === 'asc' ? -1 : 1) : (th.classList.contains('num') ? -1 : 1);
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      function key(r) {
        var c = r.cells[col]; if (!c) return '';
        if (c.dataset.sort !== undefined) return parseFloat(c.dataset.sort);
        return c.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === 'number' && typeof y === 'number') return dir * (x - y);
        if (typeof x === 'number') return -1; if (typeof y === 'number') return 1;
        return dir * String(x).localeCompare(String(y));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
