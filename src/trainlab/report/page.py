"""One self-contained HTML page: sections of tables, notes and inline figures.

Everything the page needs is inside the file: the style sheet, and each figure as a
base64 PNG in an <img> tag, so the page opens anywhere (a browser with no network, an
e-mail attachment, a CI artifact) and reads at phone width. The builders in this module
take plain values and return HTML fragments; they escape every string they are given.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainlab.errors import RunError

STYLE = """
:root{--fg:#1d2430;--muted:#5b6472;--line:#dde1e7;--bg:#f6f7f9;--card:#fff;--accent:#1565c0;
--good:#2e7d32;--bad:#c62828;--warn:#b26a00}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.45;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#14213d;color:#fff;padding:18px 20px}
header h1{margin:0;font-size:1.35rem;word-break:break-word}
header p{margin:4px 0 0;color:#c9d1e0;font-size:.92rem}
main{max-width:1240px;margin:0 auto;padding:12px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 16px;margin:12px 0;min-width:0}
h2{font-size:1.1rem;margin:2px 0 10px}
h3{font-size:.98rem;margin:14px 0 6px}
p{margin:6px 0}
.muted{color:var(--muted)}
.small{font-size:.8rem;color:var(--muted)}
.grid figure img{width:100%}
.grid{display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr))}
figure{margin:0;min-width:0}
figure img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:.85rem;margin-top:4px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:.9rem;min-width:50%}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.kv th{background:none;color:var(--muted);font-weight:500}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.82rem;
font-weight:600;background:#e3e7ee;color:var(--fg);white-space:nowrap}
.badge.good{background:#dff1e1;color:var(--good)}
.badge.bad{background:#fbe1e1;color:var(--bad)}
.badge.warn{background:#fdf0d5;color:var(--warn)}
.cards{display:grid;gap:10px;grid-template-columns:repeat(auto-fit,minmax(150px,1fr))}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.card b{display:block;font-size:1.25rem;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:.82rem}
pre{background:#f1f3f6;border-radius:4px;padding:10px;overflow-x:auto;font-size:.82rem;
margin:6px 0;max-width:100%}
pre.tall{max-height:460px;overflow:auto}
code{font-size:.88em}
details summary{cursor:pointer;color:var(--accent);margin:4px 0}
nav{font-size:.88rem;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:2px 14px}
nav a{color:#c9d1e0;white-space:nowrap}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:8px 0 24px}
@media (max-width:600px){body{font-size:14px}main{padding:6px}section{padding:10px}
th,td{padding:3px 6px}header{padding:14px 12px}}
"""

GOOD = ("helps", "good fit", "completed", "better", "complete", "info", "yes", "passed")
BAD = ("hurts", "over-fitting", "under-fitting", "diverged", "failed", "error", "worse", "fail")


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A number as the tables show it: 4 significant decimals, thousands separators for
    integers, '—' for missing or non-finite values."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and (abs(value) < 10**-digits or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: Any, digits: int = 4) -> str:
    """A difference with its sign (+0.0123), '—' when missing."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}"


def badge(text: Any) -> str:
    """A coloured label for a verdict or status (green good, red bad, amber otherwise)."""
    t = str(text)
    low = t.lower()
    kind = "good" if low in GOOD else "bad" if low == "no" or any(b in low for b in BAD) else "warn"
    if low.startswith("no significant") or low in ("stopped", "pruned", "unknown"):
        kind = "warn"
    return f'<span class="badge {kind}">{esc(t)}</span>'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric: Iterable[int] = (),
    raw: Iterable[int] = (),
) -> str:
    """A scrollable table. Cells are escaped, except the columns in `raw` (HTML already
    built, e.g. badges); the columns in `numeric` align right."""
    nums, raws = set(numeric), set(raw)
    head = "".join(
        f'<th class="n">{esc(h)}</th>' if i in nums else f"<th>{esc(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell) if i in raws else esc(cell)
            cells.append(f'<td class="n">{text}</td>' if i in nums else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def kv(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], raw: bool = False) -> str:
    """A two-column key/value table; values are escaped unless `raw`."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v if raw else esc(v)}</td></tr>" for k, v in items)
    return f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>'


def cards(items: Iterable[tuple[str, Any]]) -> str:
    """Headline numbers as small cards (label under a large value)."""
    body = "".join(
        f'<div class="card"><b>{esc(value)}</b><span>{esc(label)}</span></div>'
        for label, value in items
    )
    return f'<div class="cards">{body}</div>'


def pre(text: str, summary: str | None = None, tall: bool = False) -> str:
    """Preformatted text, folded under `summary` when one is given; a `tall` block
    scrolls inside a box instead of stretching the page."""
    block = f'<pre class="tall">{esc(text)}</pre>' if tall else f"<pre>{esc(text)}</pre>"
    return f"<details><summary>{esc(summary)}</summary>{block}</details>" if summary else block


def para(text: str, muted: bool = False) -> str:
    """A paragraph of escaped text."""
    return f'<p class="muted">{esc(text)}</p>' if muted else f"<p>{esc(text)}</p>"


def png_bytes(fig: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)  # every figure ran tight_layout already
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class Page:
    """A report page being built: sections in order, a count of the figures inlined."""

    title: str
    subtitle: str = ""
    kind: str = "run"
    sections: list[tuple[str, str, str]] = field(default_factory=list)
    figures: int = 0

    def figure(self, fig: Any, caption: str = "", alt: str = "") -> str:
        """Inline a matplotlib figure (closed afterwards) as a base64 PNG <figure>."""
        return self.image(png_bytes(fig), caption, alt)

    def panels(self, figs: Iterable[Any], captions: Sequence[str] = (), alt: str = "") -> str:
        """Several figures in a grid: side by side when wide, stacked at phone width."""
        figs = list(figs)
        caps = list(captions) + [""] * (len(figs) - len(captions))
        return grid(
            *(
                self.figure(f, c, f"{alt} {i + 1}".strip())
                for i, (f, c) in enumerate(zip(figs, caps, strict=True))
            )
        )

    def image(self, png: bytes, caption: str = "", alt: str = "") -> str:
        """Inline PNG bytes as a <figure>."""
        self.figures += 1
        data = base64.b64encode(png).decode("ascii")
        text = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        label = esc(alt or caption or f"figure {self.figures}")
        return f'<figure><img alt="{label}" src="data:image/png;base64,{data}">{text}</figure>'

    def add(self, title: str, *parts: str) -> None:
        """Append a section; empty parts are dropped, a section with none is skipped."""
        body = "".join(p for p in parts if p)
        if body:
            anchor = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
            self.sections.append((anchor or f"s{len(self.sections)}", title, body))

    def render(self) -> str:
        """The whole HTML document."""
        links = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in self.sections)
        body = "".join(
            f'<section id="{a}"><h2>{esc(t)}</h2>{b}</section>' for a, t, b in self.sections
        )
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="generator" content="trainlab report ({esc(self.kind)})">'
            f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{esc(self.title)}</h1>"
            + (f"<p>{esc(self.subtitle)}</p>" if self.subtitle else "")
            + f"<nav>{links}</nav></header><main>{body}</main>"
            f"<footer>trainlab report · {esc(self.kind)} · {stamp}</footer></body></html>"
        )


def grid(*figures: str) -> str:
    """Figures side by side on wide screens, one per row on narrow ones."""
    present = [f for f in figures if f]
    return f'<div class="grid">{"".join(present)}</div>' if present else ""


def read_folder_json(folder: Path, name: str, fix: str) -> dict[str, Any]:
    """`folder/name` parsed, or a RunError naming the file and `fix` (how to rewrite it)."""
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"'{path}' cannot be read ({type(exc).__name__}); {fix}") from None
