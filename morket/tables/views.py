"""Table pages: the list of tables, the grid page, its row windows, saved views and the row panel."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from morket.core.errors import MorketError, NotFound, ValidationFailed
from morket.core.htmx import render_page_or_fragment
from morket.core.ratelimit import GRID_LIMIT
from morket.core.roles import can
from morket.core.tenancy import transaction_for_writes, workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db, limiter
from morket.tables import bp, service
from morket.tables.column_views import mark_cell_states
from morket.tables.filters import OPERATORS
from morket.tables.models import Column, Table, View
from morket.tables.number_format import NUMERIC_TYPES, format_number, format_of, number_texts, raw_text
from morket.tables.search import search_window
from morket.tables.sorting import progress_percent as sorting_progress
from morket.tables.windows import row_position

ROW_HEIGHT = 32
ROWNUM_WIDTH = 76  # the row-number column fits seven digits (row 1000000)
DEFAULT_LIMIT = 120
MAX_PAGE_LIMIT = 300
IMPORT_RULE = "/w/<slug>/tables/<int:table_id>/import"


# --- cell texts ------------------------------------------------------------------------------------


def cell_raw(value: Any, column_type: str) -> str:
    """Return the text an editor starts with for a stored value (what parse_cell reads back)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return raw_text(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if column_type == "multi_select" and isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def cell_display(value: Any, column_type: str, config: dict[str, Any] | None = None) -> str:
    """Return a stored value as the grid shows it (numbers grouped, dates short, checkboxes ticked)."""
    if value is None:
        return ""
    if column_type == "checkbox":
        return "✓" if value else ""
    if isinstance(value, Decimal):
        return format_number(value, format_of(column_type, config))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return cell_raw(value, column_type)


def cell_pretty(value: Any, column_type: str, config: dict[str, Any] | None = None) -> str:
    """Return a value for the row panel: JSON indented, everything else as the grid shows it."""
    if isinstance(value, dict | list) and column_type != "multi_select":
        return json.dumps(value, ensure_ascii=False, indent=2)
    return cell_display(value, column_type, config)


@bp.app_template_filter("cell_raw")
def _cell_raw_filter(value: Any, column_type: str) -> str:
    return cell_raw(value, column_type)


@bp.app_template_filter("cell_display")
def _cell_display_filter(value: Any, column_type: str, config: dict[str, Any] | None = None) -> str:
    return cell_display(value, column_type, config)


# --- helpers ---------------------------------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be a whole number.", fields={name: ["not a number"]}) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be {low} to {high:,}.", fields={name: [f"{low} to {high}"]})
    return value


def _pick_view(workspace: Workspace, table: Table, views: list[View] | None = None) -> View | None:
    """Return the view named by ?view= (404 when not this table's), else the table's first view."""
    raw = request.args.get("view") or request.form.get("view")
    if raw:
        if not raw.isdigit():
            abort(404)
        return service.get_view_or_404(workspace, table, int(raw))
    if views is not None:
        return views[0] if views else None
    found = service.list_views(workspace, table)
    return found[0] if found else None


def _visible_columns(table: Table | service.TableMeta, view: View | service.ViewMeta | None) -> list[Column]:
    hidden = set(view.hidden_column_ids or []) if view is not None else set()
    return [c for c in table.live_columns if c.id not in hidden and not c.hidden]


def _width(column: Column, view: View | None) -> int:
    if view is not None and view.widths:
        return view.widths.get(str(column.id), column.width)
    return column.width


def _search_query() -> str | None:
    query = (request.args.get("q") or "").strip()
    return query or None


# --- tables list -----------------------------------------------------------------------------------


def _index(
    workspace: Workspace,
    membership: Member,
    status: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
):
    tables = service.list_tables(workspace)
    folders: dict[str | None, list[Table]] = {}
    for table in tables:
        folders.setdefault(table.folder, []).append(table)
    return render_page_or_fragment(
        "tables/index.html",
        status,
        workspace=workspace,
        membership=membership,
        folders=folders,
        import_url=lambda table_id: _import_url(workspace, table_id),
        error=error,
        values=values or {},
    )


def _import_url(workspace: Workspace, table_id: int) -> str | None:
    """Return the CSV import page of a table when that feature is installed."""
    for rule in current_app.url_map.iter_rules():
        if rule.rule == IMPORT_RULE and "GET" in (rule.methods or ()):
            return url_for(rule.endpoint, slug=workspace.slug, table_id=table_id)
    return None


@bp.get("/w/<slug>/tables")
@workspace_page("tables.view")
def index(workspace: Workspace, membership: Member):
    return _index(workspace, membership)


@bp.post("/w/<slug>/tables")
@workspace_page("tables.manage")
def create(workspace: Workspace, membership: Member):
    name, folder = request.form.get("name", ""), request.form.get("folder", "")
    try:
        table = service.create_table(
            workspace, current_user, name, folder=folder, columns=[{"name": "Name", "type": "text"}]
        )
    except MorketError as exc:
        db.session.rollback()
        return _index(workspace, membership, exc.status, exc.message, {"name": name, "folder": folder})
    db.session.commit()
    flash(f"{table.name} is ready. Add columns and rows, or paste from a spreadsheet.", "success")
    return _redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id))


@bp.post("/w/<slug>/tables/<int:table_id>/rename")
@workspace_page("tables.manage")
def rename(workspace: Workspace, membership: Member, table_id: int):
    table = service.get_table_or_404(workspace, table_id, lock="update")
    name = request.form.get("name", "")
    try:
        service.rename_table(workspace, current_user, table, name)
    except MorketError as exc:
        db.session.rollback()
        return _index(workspace, membership, exc.status, exc.message)
    db.session.commit()
    flash("Table renamed.", "success")
    return _redirect(
        request.form.get("next") == "grid"
        and url_for("tables.grid", slug=workspace.slug, table_id=table_id)
        or url_for("tables.index", slug=workspace.slug)
    )


@bp.post("/w/<slug>/tables/<int:table_id>/delete")
@workspace_page("tables.manage")
def delete(workspace: Workspace, membership: Member, table_id: int):
    table = service.get_table_or_404(workspace, table_id)
    name = table.name
    service.delete_table(workspace, current_user, table)
    db.session.commit()
    flash(f"{name} was deleted.", "success")
    return _redirect(url_for("tables.index", slug=workspace.slug))


def _redirect(location: str):
    """Redirect a plain form post, or tell htmx to navigate."""
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = location
        return resp
    return redirect(location, 303)


# --- the grid --------------------------------------------------------------------------------------


@bp.get("/w/<slug>/tables/<int:table_id>")
@workspace_page("tables.view")
def grid(workspace: Workspace, membership: Member, table_id: int):
    table = service.get_table_or_404(workspace, table_id)
    views = service.list_views(workspace, table)
    view = _pick_view(workspace, table, views)
    columns = _visible_columns(table, view)
    # A stale sorted/filtered view is ordered by the first window request, which shows "Sorting…".
    sorting = view is not None and view.is_ordered and (view.order_stale or view.order_size is None)
    # ?row=<id> (a search result) opens the grid scrolled to that row with its panel open.
    open_row = _int_arg("row", 0, 0, 2**63 - 1) or None
    open_pos = None
    if open_row is not None:
        if view is not None and view.is_ordered:
            transaction_for_writes()
        open_pos = row_position(workspace, table, view, open_row)
        sorting = view is not None and view.is_ordered and (view.order_stale or view.order_size is None)
    total = None if sorting else service.count_rows(workspace, current_user, table, view)
    resp = render_page_or_fragment(
        "tables/grid.html",
        workspace=workspace,
        membership=membership,
        table=table,
        views=views,
        view=view,
        columns=columns,
        widths={c.id: _width(c, view) for c in columns},
        all_columns=table.live_columns,
        total=total,
        sorting=sorting,
        row_height=ROW_HEIGHT,
        rownum_width=ROWNUM_WIDTH,
        can_edit=can(membership.role, "tables.edit"),
        can_manage=can(membership.role, "tables.manage"),
        import_url=_import_url(workspace, table.id),
        editor=_editor(table, view) if view is not None else None,
        open_row=open_row,
        open_pos=open_pos,
    )
    if total is not None and view is not None and view.is_ordered:
        db.session.commit()  # counting rebuilds an order a crash emptied: keep it
    return resp


# Types whose stored value is its own text, in the editor and on screen.
_PLAIN_TYPES = frozenset(
    {"text", "long_text", "email", "url", "phone", "domain", "single_select", "ai", "formula", "lookup"}
)
# Types with few distinct values in a window: their cells are built once per value.
_REPEATING_TYPES = frozenset({"single_select"})


def _escape_text(text: str) -> str:
    """Escape text for HTML exactly as markupsafe does, without a Markup object per call (hot path)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    )


def _cell_renderer(column: Column | service.ColumnMeta) -> Callable[[Any], str]:
    """Return a function from a stored value to this column's cell HTML (the window's hot path).

    It writes what ``render_cell`` in tables/_cell.html writes, specialised once per column so that
    a window of 300 rows costs one call and at most one escape per text cell.
    """
    kind, config = column.type, column.config
    head = (
        f'<div class="grid-cell t-{escape(kind)}" data-col-id="{int(column.id)}" role="gridcell" '
        f'data-type="{escape(kind)}" tabindex="-1" data-raw="'
    )
    empty = head + '"></div>'

    def typed(value: Any) -> str:
        if value is None:
            return empty
        return f'{head}{escape(cell_raw(value, kind))}">{escape(cell_display(value, kind, config))}</div>'

    if kind in ("formula", "lookup") and (config or {}).get("result_type") == "number":
        return _number_formula_renderer(column)  # a lookup's count too
    if kind in _PLAIN_TYPES:

        def plain(value: Any) -> str:
            if value is None:
                return empty
            text = _escape_text(value if type(value) is str else str(value))
            return f'{head}{text}">{text}</div>'

        def plain_column(values: Sequence[Any]) -> list[str]:
            # A whole column escaped as one string: text from PostgreSQL never holds NUL, so it
            # separates the cells. An empty text renders as None does (``empty``).
            texts = [v if type(v) is str else "" if v is None else str(v) for v in values]
            escaped = _escape_text("\x00".join(texts)).split("\x00")
            if len(escaped) != len(texts):
                return [plain(v) for v in values]
            return [f'{head}{text}">{text}</div>' for text in escaped]

        plain.column = plain_column  # type: ignore[attr-defined]
        if kind in _REPEATING_TYPES:
            built: dict[Any, str] = {}

            def repeating(value: Any) -> str:
                found = built.get(value)
                if found is None:
                    found = built[value] = plain(value)
                return found

            def repeating_column(values: Sequence[Any]) -> list[str]:
                known = built.get
                return [known(v) or repeating(v) for v in values]

            repeating.column = repeating_column  # type: ignore[attr-defined]
            return repeating
        return plain
    if kind == "checkbox":
        ticks = {None: empty, True: f'{head}true">✓</div>', False: f'{head}false"></div>'}

        def checkbox(value: Any) -> str:
            found = ticks.get(value) if value is None or type(value) is bool else None
            return typed(value) if found is None else found

        def checkbox_column(values: Sequence[Any]) -> list[str]:
            return [ticks[v] if v is None or type(v) is bool else checkbox(v) for v in values]

        checkbox.column = checkbox_column  # type: ignore[attr-defined]
        return checkbox
    if kind == "date":

        def day(value: Any) -> str:
            if type(value) is not date:
                return empty if value is None else typed(value)
            text = value.isoformat()
            return f'{head}{text}">{text}</div>'

        def day_column(values: Sequence[Any]) -> list[str]:
            return [f'{head}{(t := v.isoformat())}">{t}</div>' if type(v) is date else day(v) for v in values]

        day.column = day_column  # type: ignore[attr-defined]
        return day
    if kind in NUMERIC_TYPES:
        fmt = format_of(kind, config)
        texts, tail = number_texts(fmt), str(escape(fmt.suffix))

        def numeric(value: Any) -> str:
            if type(value) is not Decimal:
                return empty if value is None else typed(value)
            raw, shown = texts(value)
            return f'{head}{raw}">{shown}{tail}</div>' if shown else f'{head}{raw}"></div>'

        def numeric_column(values: Sequence[Any]) -> list[str]:
            return [
                f'{head}{t[0]}">{t[1]}{tail}</div>' if type(v) is Decimal and (t := texts(v))[1] else numeric(v)
                for v in values
            ]

        numeric.column = numeric_column  # type: ignore[attr-defined]
        return numeric
    if kind == "enrichment":
        return _enrichment_renderer(head, empty)
    return typed


def _number_formula_renderer(column: Column | service.ColumnMeta) -> Callable[[Any], str]:
    """A number formula's cells are numbers: stored as text, shown grouped and right-aligned.

    The cell keeps ``data-type="formula"`` (it cannot be edited) and gains ``is-number``.
    """
    head = (
        f'<div class="grid-cell t-formula is-number" data-col-id="{int(column.id)}" role="gridcell" '
        'data-type="formula" tabindex="-1" data-raw="'
    )
    empty = head + '"></div>'
    fmt = format_of("formula", column.config)
    texts, tail = number_texts(fmt), str(escape(fmt.suffix))

    def number(value: Any) -> str:
        if value is None or value == "":
            return empty
        try:
            parsed = Decimal(value)
        except (ArithmeticError, ValueError, TypeError):
            parsed = None
        if parsed is None or not parsed.is_finite():
            text = _escape_text(str(value))
            return f'{head}{text}">{text}</div>'
        raw, shown = texts(parsed)
        return f'{head}{raw}">{shown}{tail}</div>'

    return number


def _enrichment_renderer(head: str, empty: str) -> Callable[[Any], str]:
    """An enrichment cell shows the value it found ({"value": ...}), not the JSON around it."""

    def enriched(value: Any) -> str:
        found = value.get("value") if isinstance(value, dict) else value
        if found is None or found == "":
            return empty if value is None else f'{head}{_escape_text(cell_raw(value, "json"))}"></div>'
        text = _escape_text(found if type(found) is str else cell_raw(found, "json"))
        # data-raw keeps the whole JSON so that editing the cell round-trips it.
        return f'{head}{_escape_text(cell_raw(value, "json"))}">{text}</div>'

    return enriched


def _column_html(render: Callable[[Any], str], values: Sequence[Any]) -> list[str]:
    """Return the cells of one column of a window: ``render`` per value, or its whole-column form."""
    column = getattr(render, "column", None)
    return column(values) if column is not None else list(map(render, values))


def _window_html(window: list[service.WindowRow], cells: list[tuple[int, Callable[[Any], str]]]) -> Markup:
    """Return the rows of a window as one piece of HTML, each value escaped once.

    Cells are rendered column by column (one renderer over a column's values, text columns
    escaped in one pass), then joined row by row.
    """
    if not window:
        return Markup("")
    by_column = list(zip(*[row.cells for row in window], strict=True))
    columns = [_column_html(render, by_column[i]) for i, render in cells]
    row_cells = zip(*columns, strict=True) if columns else [()] * len(window)
    parts = []
    for row, rendered in zip(window, row_cells, strict=True):
        html = "".join(rendered)
        if row.cell_state:
            html = mark_cell_states(Markup(html), row.cell_state)  # noqa: S704 - built from escaped parts
        pos = row.position
        parts.append(
            f'<div class="grid-row" role="row" data-row-id="{int(row.id)}" data-pos="{pos}">'
            f'<div class="grid-rownum" role="rowheader" tabindex="-1" title="Open row">{pos + 1}</div>{html}</div>\n'
        )
    return Markup("".join(parts))  # noqa: S704 - built from escaped parts


def _view_arg() -> int | None:
    raw_view = request.args.get("view")
    return int(raw_view) if raw_view and raw_view.isdigit() else None


def _member_and_window_source(slug: str, session_ref: Any, table_id: int) -> tuple[Any, Any]:
    return service.member_and_window_source(slug, session_ref, table_id, _view_arg())


@bp.get("/w/<slug>/tables/<int:table_id>/rows")
@workspace_page("tables.view", member_source=_member_and_window_source)
@limiter.limit(GRID_LIMIT)
def rows(workspace: Workspace, membership: Member, table_id: int):
    """A window of rows as HTML (the grid's hot path: the membership with the table, then the rows).

    Read without a transaction unless the view's order must be (re)built or a search runs.
    """
    raw_view = request.args.get("view")
    if raw_view and not raw_view.isdigit():
        abort(404)
    view_id = int(raw_view) if raw_view else None
    start = _int_arg("start", 0, 0, 10**12)
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_PAGE_LIMIT)
    query = _search_query()
    if query is not None:
        transaction_for_writes()
        table, view = service.get_table_and_view_or_404(workspace, table_id, view_id)
        window, total = search_window(workspace, current_user, table, view, query, start, limit)
        wrote = view is not None and view.is_ordered
        building = None
    else:
        read = g.get("member_source")
        source = None
        if read is not None and read[:2] == (table_id, view_id):
            if isinstance(read[2], NotFound):
                raise read[2]
            source = read[2]
        got = service.read_grid_window(workspace, current_user, table_id, view_id, start, limit, source)
        table, view, window, total, wrote = got[:5]
        building = got.sorting
    positions = {c.id: i for i, c in enumerate(table.live_columns)}
    cells = [(positions[c.id], _cell_renderer(c)) for c in _visible_columns(table, view)]
    body = _window_html(window, cells)
    if wrote:
        db.session.commit()  # the read (re)built the view's order: keep it for the next reads
    # The partial is the rows alone (templates/tables/_rows.html held just ``{{ rows }}``).
    resp = make_response(str(body))
    resp.headers["X-Grid-Total"] = str(total)
    if building is not None:
        # A job builds the view's order: the grid shows "Sorting N rows… P%" and asks again.
        resp.headers["X-Grid-Sorting"] = f"{sorting_progress(building)} {int(building.get('rows') or 0)}"
    resp.headers["Cache-Control"] = "no-store"
    resp.vary.add("HX-Request")
    return resp


@bp.get("/w/<slug>/tables/<int:table_id>/rows/<int:row_id>")
@workspace_page("tables.view")
@limiter.limit(GRID_LIMIT)
def row_detail(workspace: Workspace, membership: Member, table_id: int, row_id: int):
    table = service.get_table_or_404(workspace, table_id)
    row = service.get_row(workspace, current_user, table, row_id)
    fields = [
        (c, cell_pretty(value, c.type, c.config), isinstance(value, dict | list) and c.type != "multi_select")
        for c, value in zip(table.live_columns, row.cells, strict=True)
    ]
    return render_page_or_fragment("tables/_row_detail.html", table=table, row=row, fields=fields, workspace=workspace)


# --- saved views -----------------------------------------------------------------------------------

OPERATOR_LABELS = {
    "equals": "is",
    "not_equals": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "any_of": "is any of",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": "is between",
    "is_true": "is checked",
    "is_false": "is not checked",
    "state_is": "enrichment state is",
}
_SORT_LINES = 3
_FILTER_LINES = 3


def _operator_choices() -> list[tuple[str, str, str]]:
    """Every operator with its label and the column types it applies to (for the editor's picker)."""
    types: dict[str, list[str]] = {}
    for column_type, names in OPERATORS.items():
        for name in names:
            types.setdefault(name, []).append(column_type)
    return [(name, OPERATOR_LABELS.get(name, name), " ".join(types[name])) for name in OPERATOR_LABELS]


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _editor(
    table: Table, view: View, *, error: str | None = None, form: MultiDict[str, str] | None = None
) -> dict[str, Any]:
    """The view editor's lines: the saved sort keys and conditions plus blank lines to add more."""
    names = {c.id: c.name for c in table.live_columns}
    if form is not None:
        sort = [
            {"column_id": int(c) if c.isdigit() else None, "dir": d}
            for c, d in zip(form.getlist("s_col"), form.getlist("s_dir"), strict=False)
        ]
        conditions = [
            {"column_id": int(c) if c.isdigit() else None, "operator": o, "value_text": v}
            for c, o, v in zip(form.getlist("f_col"), form.getlist("f_operator"), form.getlist("f_value"), strict=False)
        ]
        op, nested = form.get("f_op", "and"), 0
    else:
        sort = list(view.sort or [])
        group = view.filters or {}
        flat = [c for c in group.get("conditions", []) if "conditions" not in c and c.get("operator") != "search"]
        conditions = [{**c, "value_text": _value_text(c.get("value"))} for c in flat]
        op, nested = group.get("op", "and"), len(group.get("conditions", [])) - len(flat)
    sort += [{"column_id": None, "dir": "asc"}] * max(0, _SORT_LINES - len(sort))
    conditions += [{"column_id": None, "operator": "contains", "value_text": ""}] * max(
        0, _FILTER_LINES - len(conditions)
    )
    summary = []
    if view.sort:
        summary.append("sorted by " + ", ".join(names.get(k["column_id"], "?") for k in view.sort))
    if view.filters and view.filters.get("conditions"):
        count = len(view.filters["conditions"])
        summary.append(f"{count} filter{'s' if count != 1 else ''}")
    if view.hidden_column_ids:
        summary.append(f"{len(view.hidden_column_ids)} hidden")
    return {
        "sort": sort,
        "conditions": conditions,
        "op": op,
        "nested": nested,
        "operators": _operator_choices(),
        "summary": ", ".join(summary),
        "error": error,
        "open": form is not None,
    }


def _condition_value(operator: str, text: str) -> Any:
    if operator in ("between", "any_of"):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _view_fields(table: Table, view: View, form: MultiDict[str, str]) -> dict[str, Any]:
    """Read the editor's form into update_view fields (the services validate them)."""
    live = {c.id for c in table.live_columns}

    def column_id(raw: str) -> int | None:
        return int(raw) if raw.isdigit() else None

    sort = [
        {"column_id": column_id(c), "dir": d}
        for c, d in zip(form.getlist("s_col"), form.getlist("s_dir"), strict=False)
        if c
    ]
    conditions: list[dict[str, Any]] = [
        {"column_id": column_id(c), "operator": o, "value": _condition_value(o, v)}
        for c, o, v in zip(form.getlist("f_col"), form.getlist("f_operator"), form.getlist("f_value"), strict=False)
        if c
    ]
    kept = [c for c in (view.filters or {}).get("conditions", []) if "conditions" in c or c.get("operator") == "search"]
    conditions += kept
    shown = {int(v) for v in form.getlist("shown") if v.isdigit()}
    raw_frozen = form.get("frozen_count", "1")
    if not raw_frozen.isdigit():
        raise ValidationFailed("Freeze 0 to 10 columns.", fields={"frozen_count": ["0 to 10"]})
    widths: dict[str, int] = {}
    for cid in live:
        raw = form.get(f"width_{cid}", "")
        if raw:
            if not raw.isdigit():
                raise ValidationFailed("Column widths are 40 to 1,200 pixels.", fields={"widths": ["bad width"]})
            widths[str(cid)] = int(raw)
    return {
        "name": form.get("name", ""),
        "sort": sort,
        "filters": {"op": form.get("f_op", "and"), "conditions": conditions} if conditions else {},
        "hidden_column_ids": sorted(live - shown),
        "frozen_count": int(raw_frozen),
        "widths": widths,
    }


@bp.post("/w/<slug>/tables/<int:table_id>/views/<int:view_id>")
@workspace_page("tables.edit")
def save_view(workspace: Workspace, membership: Member, table_id: int, view_id: int):
    table = service.get_table_or_404(workspace, table_id, lock="share")
    view = service.get_view_or_404(workspace, table, view_id)
    try:
        fields = _view_fields(table, view, request.form)
        if request.form.get("as_new"):
            name = fields.pop("name")
            if name.strip() == view.name:
                name = f"{view.name} (copy)"
            saved = service.create_view(workspace, current_user, table, name, **fields)
        else:
            saved = service.update_view(workspace, current_user, table, view, **fields)
    except MorketError as exc:
        db.session.rollback()
        table = service.get_table_or_404(workspace, table_id)
        view = service.get_view_or_404(workspace, table, view_id)
        return render_page_or_fragment(
            "tables/_view_editor.html",
            exc.status,
            workspace=workspace,
            table=table,
            view=view,
            views=service.list_views(workspace, table),
            all_columns=table.live_columns,
            can_edit=True,
            editor=_editor(table, view, error=exc.message, form=request.form),
        )
    saved_id, saved_name = saved.id, saved.name
    db.session.commit()
    flash(f"Saved the view “{saved_name}”.", "success")
    return _redirect(url_for("tables.grid", slug=workspace.slug, table_id=table_id, view=saved_id))


@bp.post("/w/<slug>/tables/<int:table_id>/views/<int:view_id>/filters/clear")
@workspace_page("tables.edit")
def clear_view_filters(workspace: Workspace, membership: Member, table_id: int, view_id: int):
    """Drop every filter of a view (the grid's "No rows match these filters" offers it)."""
    table = service.get_table_or_404(workspace, table_id, lock="share")
    view = service.get_view_or_404(workspace, table, view_id)
    service.update_view(workspace, current_user, table, view, filters={})
    view_name = view.name
    db.session.commit()
    flash(f"Cleared the filters of “{view_name}”.", "success")
    return _redirect(url_for("tables.grid", slug=workspace.slug, table_id=table_id, view=view_id))


@bp.post("/w/<slug>/tables/<int:table_id>/views/<int:view_id>/delete")
@workspace_page("tables.edit")
def delete_view(workspace: Workspace, membership: Member, table_id: int, view_id: int):
    table = service.get_table_or_404(workspace, table_id, lock="share")
    view = service.get_view_or_404(workspace, table, view_id)
    views = service.list_views(workspace, table)
    if views and views[0].id == view.id:
        raise ValidationFailed("The table's first view cannot be deleted.")
    service.delete_view(workspace, current_user, table, view)
    db.session.commit()
    flash("View deleted.", "success")
    return _redirect(url_for("tables.grid", slug=workspace.slug, table_id=table_id))
