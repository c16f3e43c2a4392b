"""Small HTML building blocks for the self-contained report: every image and movie is inlined as a data URI,
the style sheet is inline, and nothing refers to the network, so the page opens offline and on a slide laptop."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

CSS = """
:root { --ink:#1d2330; --muted:#5d6676; --line:#dfe3ea; --accent:#2458a6; --bg:#ffffff; --panel:#f6f8fb;
        --warn:#8a5a00; --warnbg:#fff6e0; --bad:#9b1c1c; --badbg:#fdecec; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background:#17233b; color:#fff; padding:22px 36px 16px; }
header.top h1 { margin:0 0 4px; font-size:26px; font-weight:600; }
header.top p { margin:2px 0; color:#c9d3e6; font-size:14px; }
nav.toc { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line);
          padding:8px 36px; font-size:14px; }
nav.toc a { color:var(--accent); text-decoration:none; margin-right:18px; }
main { max-width:1240px; margin:0 auto; padding:8px 36px 60px; }
section { border-bottom:1px solid var(--line); padding:18px 0 26px; }
h2 { font-size:22px; margin:10px 0 12px; }
h3 { font-size:17px; margin:22px 0 8px; }
h4 { font-size:15px; margin:14px 0 6px; color:var(--muted); }
p.lead { color:var(--muted); margin-top:0; }
table { border-collapse:collapse; margin:8px 0 14px; font-size:13.5px; }
caption { caption-side:top; text-align:left; color:var(--muted); padding-bottom:4px; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
th { background:var(--panel); font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr.summary td { font-weight:600; background:#fafbfd; white-space:nowrap; }
.cards { display:flex; flex-wrap:wrap; gap:14px; margin:12px 0; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 16px; min-width:190px; }
.card .value { font-size:26px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .label { color:var(--muted); font-size:13px; }
.card .ref { color:var(--muted); font-size:12px; }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.row { display:flex; flex-wrap:wrap; gap:18px; align-items:flex-start; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(540px, 1fr)); gap:16px; }
.trial { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.trial h4 { margin:0 0 6px; color:var(--ink); }
video { width:100%; max-width:640px; image-rendering:pixelated; background:#000; border-radius:4px; display:block; }
.note { border-left:4px solid #c9a227; background:var(--warnbg); color:var(--warn); padding:8px 12px;
        margin:10px 0; border-radius:0 4px 4px 0; font-size:14px; }
.note.error { border-color:var(--bad); background:var(--badbg); color:var(--bad); }
.note code { color:inherit; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12.5px; }
pre { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:10px; overflow:auto;
      max-height:360px; }
details summary { cursor:pointer; color:var(--accent); }
.tag { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.tag.paper { background:#e8eef9; color:#23457e; }
.tag.run { background:#e6f4ea; color:#1e6b35; }
.tag.bad { background:var(--badbg); color:var(--bad); }
.muted { color:var(--muted); }
.src { color:var(--muted); font-size:11.5px; margin-left:6px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""


def esc(value: object) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(value), quote=True)


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image(png: bytes, alt: str, caption: str | None = None, width: int | None = None) -> str:
    """An inline PNG in a <figure> (with an optional caption); `width` caps the displayed width in CSS pixels."""
    style = f' style="max-width:{width}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png, "image/png")}" alt="{esc(alt)}"{style}>{cap}</figure>'


def video(mp4: bytes, label: str, caption: str | None = None) -> str:
    """An inline MP4 that loops silently, as a slide would show it."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><video controls loop muted autoplay playsinline aria-label="{esc(label)}" '
        f'src="{data_uri(mp4, "video/mp4")}"></video>{cap}</figure>'
    )


def note(text: str, error: bool = False) -> str:
    """A visible remark: what is missing and which command produces it (or, with `error`, what failed)."""
    return f'<div class="note{" error" if error else ""}">{esc(text)}</div>'


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt(value: object, digits: int = 3) -> str:
    """Numbers to fixed decimals, None to an em dash, everything else as text."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "\u2014"
        if abs(value) >= 1000 or (0 < abs(value) < 10 ** (-digits)):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    caption: str | None = None,
    summary_rows: Iterable[Sequence[object]] = (),
    digits: int | Sequence[int] = 3,
    align_numbers: bool = True,
) -> str:
    """A table; numbers get `digits` decimals (one value, or one per column) and are right-aligned unless
    `align_numbers` is False (key-value tables); `summary_rows` are set in bold at the end.

    Cells that are already HTML can be passed as `Raw`.
    """
    per_column = [digits] * len(headers) if isinstance(digits, int) else list(digits)

    def cell(value: object, column: int) -> str:
        if isinstance(value, Raw):
            return f"<td>{value}</td>"
        text = esc(fmt(value, per_column[column] if column < len(per_column) else 3))
        return f'<td class="num">{text}</td>' if align_numbers and is_number(value) else f"<td>{text}</td>"

    def row_html(row: Sequence[object], cls: str = "") -> str:
        return f"<tr{cls}>" + "".join(cell(v, i) for i, v in enumerate(row)) + "</tr>"

    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(row_html(row) for row in rows)
    body += "".join(row_html(row, ' class="summary"') for row in summary_rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """Text that is already HTML (not escaped again by `table`)."""


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """Headline numbers as cards: (value, label, reference line)."""
    out = []
    for value, label, ref in items:
        out.append(
            f'<div class="card"><div class="value">{esc(value)}</div><div class="label">{esc(label)}</div>'
            f'<div class="ref">{esc(ref)}</div></div>'
        )
    return f'<div class="cards">{"".join(out)}</div>'


def pre_json(text: str, summary: str) -> str:
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def section(anchor: str, title: str, body: str, lead: str | None = None) -> str:
    lead_html = f'<p class="lead">{esc(lead)}</p>' if lead else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{lead_html}{body}</section>'


def page(title: str, subtitle_lines: Sequence[str], sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document; `sections` are (anchor, menu title, HTML)."""
    toc = "".join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name, _ in sections)
    subtitle = "".join(f"<p>{esc(line)}</p>" for line in subtitle_lines)
    body = "".join(html_ for _, _, html_ in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{esc(title)}</h1>{subtitle}</header>'
        f'<nav class="toc">{toc}</nav><main>{body}</main><footer>{esc(footer)}</footer></body></html>\n'
    )
