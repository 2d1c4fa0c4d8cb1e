"""`results/index.html`: the page a facility shows its users, one self-contained HTML file.

At the top, static HTML written here: the summary line, counts of scenes by format and state (each
count a link that filters the table), the groups of scenes that share pixels or look alike (from
`bioiscc similar`), skipped inputs and stale results when the caller names them, and a legend. Below,
the table: its rows are embedded as JSON and rendered a page at a time by the small script of the
template (`templates/page.html`), which sorts and filters them; the page's state lives in the URL
fragment (`#state=failed&q=czi`), so a view of it can be linked. No network: CSS and script are
inline, thumbnails are data URIs, and a Content-Security-Policy forbids everything else. Knows
nothing of click.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from .records import GENERATOR

#: row states, worst first: the table lists them in this order unless sorted otherwise
FAILED = "failed"
VIEWS_FAILED = "views failed"
FLAT = "flat"
OK = "ok"
STATES = (FAILED, VIEWS_FAILED, FLAT, OK)
#: longest side of a view thumbnail as embedded, in pixels (smaller views are scaled up by the
#: browser, nearest-neighbour)
THUMB_PIXELS = 64
#: thumbnails embedded in one page at most (each about 1-4 KB); later scenes show a count
THUMB_BUDGET = 3000
#: groups the page lists at most per relation (the TSV of `bioiscc similar` has them all)
GROUP_BUDGET = 500
#: skipped inputs or stale results the page lists at most, each
NOTE_BUDGET = 1000
RELATIONS = (
    ("identical", "Scenes that share pixels", "the same ISCC-SUM: the same pixels, in any format"),
    ("near-identical", "Near-identical scenes", "Data-Codes a few bits apart: nearly the same pixels"),
    ("look-alike", "Look-alike scenes", "ISCC-MIXEDs of their views a few bits apart: they look alike"),
)
#: the fields of a table row, in the order the embedded JSON gives them
ROW_FIELDS = (
    "input",
    "scene",
    "name",
    "state",
    "iscc_code",
    "iscc_mixed",
    "views",
    "thumbs",
    "format",
    "reader",
    "dtype",
    "dims",
    "bytes",
    "file_iscc_code",
    "group",
    "relation",
    "error",
)


def row_state(row: Mapping[str, Any]) -> str:
    """What the page says of a row: failed, views failed, flat (views carry no picture), ok; any
    other status (as a caller may give, e.g. "skipped") as it is."""
    status = row.get("status") or FAILED
    if status != OK:
        return str(status)
    if row.get("views_status") == FAILED:
        return VIEWS_FAILED
    if row.get("views_flat"):
        return FLAT
    return OK


def render_page(
    rows: Iterable[Mapping[str, Any]],
    summary: str,
    groups: Sequence[Mapping[str, Any]] | None = None,
    skipped: Sequence[Mapping[str, Any]] = (),
    stale: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The page for index rows (as `bioiscc index` makes them; `_pngs` holds a row's view PNGs),
    its summary line, the groups of a `bioiscc similar` record (each with its `pairs`), and any
    skipped inputs and stale results (mappings with `input` or `path`, and `reason`)."""
    rows = list(rows)
    states = {id(row): row_state(row) for row in rows}
    order = _state_order(states.values())
    ranked = sorted(
        rows,
        key=lambda r: (
            order[states[id(r)]],
            str(r.get("input")),
            -1 if r.get("scene") is None else r["scene"],
        ),
    )
    with_views = any(row.get("views_status") is not None for row in ranked)
    group_of = _group_of(groups or [])
    budget = [THUMB_BUDGET]
    table = {
        "fields": ROW_FIELDS,
        "states": list(order),
        "with_views": with_views,
        "rows": [_table_row(row, states[id(row)], group_of, budget) for row in ranked],
    }
    parts = {
        "generator": escape(GENERATOR),
        "summary": escape(summary),
        "counts": _counts_html(ranked, states, order),
        "groups": _groups_html(groups) if groups is not None else "",
        "notes": _notes_html("Skipped inputs", "inputs the include patterns or readers passed over", skipped)
        + _notes_html("Stale results", "results of inputs that no longer exist", stale),
        "data": _script_json(table),
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda match: parts[match.group(1)], _template())


def _template() -> str:
    return (resources.files("bioiscc") / "templates" / "page.html").read_text(encoding="utf-8")


def _state_order(states: Iterable[str]) -> dict[str, int]:
    """Rank of each state: the known ones worst first, any other (skipped, stale) after failed."""
    others = sorted(set(states) - set(STATES))
    ordered = [FAILED, *others, *STATES[1:]]
    return {state: rank for rank, state in enumerate(ordered)}


def _group_of(groups: Sequence[Mapping[str, Any]]) -> dict[tuple[str, Any], tuple[Any, Any]]:
    """(input, scene) -> (group number, relation) of every scene in a group."""
    found: dict[tuple[str, Any], tuple[Any, Any]] = {}
    for group in groups:
        for member in group.get("members") or []:
            found[(str(member.get("input")), member.get("scene"))] = (
                group.get("group"),
                group.get("relation"),
            )
    return found


def _table_row(
    row: Mapping[str, Any], state: str, group_of: Mapping[tuple[str, Any], tuple[Any, Any]], budget: list[int]
) -> list[Any]:
    group, relation = group_of.get((str(row.get("input")), row.get("scene")), (None, None))
    error, views_error = row.get("error"), row.get("views_error")
    if views_error and views_error != error:  # a file that cannot be read fails its views alike
        error = "; ".join(filter(None, [error, f"views: {views_error}"]))
    values = {
        **row,
        "state": state,
        "thumbs": _thumbnails(row.get("_pngs") or [], budget),
        "dims": " ".join(f"{k}={v}" for k, v in (row.get("dims") or {}).items()) or None,
        "group": group,
        "relation": relation,
        "error": error,
    }
    return [values.get(field) for field in ROW_FIELDS]


def _thumbnails(pngs: Sequence[tuple[Any, Any]], budget: list[int]) -> list[list[str]] | None:
    """[view id, data URI] of each view while the page's budget lasts; None when none is embedded."""
    found = []
    for view_id, path in pngs:
        if budget[0] <= 0:
            break
        uri = thumbnail_uri(path)
        if uri is not None:
            budget[0] -= 1
            found.append([str(view_id), uri])
    return found or None


def thumbnail_uri(path: Path | str) -> str | None:
    """The view as a PNG data URI, its longest side at most THUMB_PIXELS; None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_PIXELS, THUMB_PIXELS), Image.Resampling.BOX)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no `</script>`, no `<!--`)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _link(**filters: Any) -> str:
    from urllib.parse import urlencode

    return "#" + escape(urlencode({key: value for key, value in filters.items() if value is not None}))


def _counts_html(
    rows: Sequence[Mapping[str, Any]], states: Mapping[int, str], order: Mapping[str, int]
) -> str:
    """A table of scenes by format (rows) and state (columns), each count a link filtering the table."""
    counts = Counter((row.get("format") or "", states[id(row)]) for row in rows)
    by_format = Counter(row.get("format") or "" for row in rows)
    by_state = Counter(states[id(row)] for row in rows)
    shown = [state for state in order if by_state[state] or state in (OK, FAILED)]
    head = "".join(f'<th class="num state-{_css(s)}">{escape(s)}</th>' for s in shown)
    lines = []
    for fmt, total in sorted(by_format.items(), key=lambda item: (-item[1], item[0])):
        cells = "".join(_count_cell(counts[(fmt, s)], _link(format=fmt, state=s)) for s in shown)
        name = escape(fmt) if fmt else "<i>not read</i>"  # inputs that could not be opened
        lines.append(f"<tr><th>{name}</th>{cells}{_count_cell(total, _link(format=fmt))}</tr>")
    totals = "".join(_count_cell(by_state[s], _link(state=s)) for s in shown)
    return (
        f'<table class="counts"><thead><tr><th>format</th>{head}<th class="num">scenes</th></tr></thead>'
        f"<tbody>{''.join(lines)}</tbody>"
        f"<tfoot><tr><th>all</th>{totals}{_count_cell(len(rows), '#')}</tr></tfoot></table>"
    )


def _count_cell(count: int, link: str) -> str:
    shown = f'<a href="{link}">{count:,}</a>' if count else "·"
    return f'<td class="num">{shown}</td>'


def _css(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower())


def _groups_html(groups: Sequence[Mapping[str, Any]]) -> str:
    """Per relation, its groups: each a link showing its scenes in the table, and its distances."""
    sections = []
    for relation, title, note in RELATIONS:
        chosen = [group for group in groups if group.get("relation") == relation]
        if not chosen:
            continue
        items = [_group_item(group, relation) for group in chosen[:GROUP_BUDGET]]
        more = (
            f"<li>… {len(chosen) - GROUP_BUDGET:,} more in duplicates.tsv</li>"
            if len(chosen) > GROUP_BUDGET
            else ""
        )
        sections.append(
            f'<details class="groups rel-{_css(relation)}" open><summary>'
            f"<b>{escape(title)} ({len(chosen):,})</b> — {escape(note)}</summary>"
            f"<ul>{''.join(items)}{more}</ul></details>"
        )
    if not sections:
        return '<p class="quiet">No two scenes share pixels or look alike.</p>'
    return "\n".join(sections)


def _group_item(group: Mapping[str, Any], relation: str) -> str:
    number = group.get("group")
    members = ", ".join(
        f"<code>{escape(str(m.get('input')))}</code>{_scene_suffix(m.get('scene'))}"
        for m in group.get("members") or []
    )
    detail = ""
    if relation != "identical":
        pairs = group.get("pairs") or []
        data = sorted({p.get("data_distance") for p in pairs} - {None})
        mixed = sorted({p.get("mixed_distance") for p in pairs} - {None})
        bits = [f"Data-Code {_span(data)} bits apart"] if data else []
        bits += [f"ISCC-MIXED {_span(mixed)} bits apart"] if mixed else []
        detail = f' <span class="quiet">({escape(", ".join(bits))})</span>' if bits else ""
    return f'<li><a href="{_link(group=number)}">group {escape(str(number))}</a>: {members}{detail}</li>'


def _scene_suffix(scene: Any) -> str:
    return f' <span class="quiet">#{escape(str(scene))}</span>' if scene is not None else ""


def _span(values: Sequence[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _notes_html(title: str, note: str, entries: Sequence[Mapping[str, Any]]) -> str:
    """A collapsed list of inputs with the reason for each (skipped inputs, stale results)."""
    if not entries:
        return ""
    items = "".join(
        f"<li><code>{escape(str(e.get('input') or e.get('path') or ''))}</code>"
        f"{': ' + escape(str(e['reason'])) if e.get('reason') else ''}</li>"
        for e in entries[:NOTE_BUDGET]
    )
    more = f"<li>… {len(entries) - NOTE_BUDGET:,} more</li>" if len(entries) > NOTE_BUDGET else ""
    return (
        f'<details class="notes"><summary><b>{escape(title)} ({len(entries):,})</b> — {escape(note)}'
        f"</summary><ul>{items}{more}</ul></details>"
    )
