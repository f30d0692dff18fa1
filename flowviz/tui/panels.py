"""The TUI's panels: hop table, packet detail, explain, journeys list and status line.

Every piece of text that came from outside (device, namespace and container
names, payload bytes) is made safe (control characters shown as \\xNN) and put
into rich Text objects, never parsed as markup.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.geometry import Size
from textual.widgets import DataTable, Static

from ..annotations import note_text
from ..explain import explain
from ..model import ChangeKind, Frame, Hop, Journey
from ..render import inner_text, outer_text, packet_label, safe
from ..render.bytemap import diagram
from ..sources import SourceStatus

BADGE = {
    ChangeKind.DNAT: "bold black on yellow", ChangeKind.IPVS: "bold black on gold1", ChangeKind.SNAT: "bold black on dark_orange",
    ChangeKind.MARK: "bold white on purple", ChangeKind.ENCAP: "bold white on blue",
    ChangeKind.DECAP: "bold white on dark_cyan", ChangeKind.DROP: "bold white on red",
    ChangeKind.ROUTE: "bold black on grey70", ChangeKind.DELIVER: "bold black on green",
    ChangeKind.VETH: "black on grey50", ChangeKind.BRIDGE: "black on grey50",
}


def badge_text(hop: Hop) -> Text:
    out = Text()
    for c in hop.changes:
        k = c.kind
        if k is ChangeKind.MARK:
            label = f"MARK {c.after:#x}"
        elif k in (ChangeKind.ENCAP, ChangeKind.DECAP):
            label = f"{k.value.upper()} VNI {c.vni}"
        elif k is ChangeKind.DROP:
            label = f"DROP {c.reason}"
        elif k is ChangeKind.BRIDGE and c.via:
            label = f"BRIDGE {c.via}"
        elif k is ChangeKind.IPVS and c.note is not None:
            label = f"IPVS → {c.note.real}"
        else:
            label = k.value.upper()
        if out:
            out.append(" ")
        out.append(f" {safe(label)} ", style=BADGE.get(k, ""))
    return out


class HopTable(DataTable):
    #: (label, fixed width or None for "as wide as the content")
    COLUMNS = (("seq", None), ("Δt µs", None), ("namespace", 30), ("device", 16), ("dir", None), ("changes", None),
               ("outer", None), ("inner", None))

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for label, width in self.COLUMNS:
            self.add_column(label, width=width)

    def show(self, j: Optional[Journey]) -> None:
        self.clear()
        if j is None:
            return
        for h in j.hops:
            ev = h.event
            ns = safe(ev.netns) + (f" [{safe(ev.mode)}]" if ev.mode else "")
            self.add_row(Text(str(h.seq)), Text(f"{h.dt_ns / 1000:.1f}"), Text(ns), Text(safe(ev.ifname)),
                         Text(ev.dir or "?"), badge_text(h), Text(outer_text(h.frame)), Text(inner_text(h.frame)),
                         key=str(h.seq))

    def point_at(self, hop: int) -> None:
        if self.row_count:
            self.move_cursor(row=min(hop, self.row_count - 1), animate=False, scroll=True)


def _field_text(layer_name: str, field: str, value) -> str:
    """A header field for people: flags and types in hex (but ICMP types, which are read in decimal)."""
    if field in ("flags", "type") and isinstance(value, int) and layer_name != "ICMP":
        return hex(value)
    return safe(str(value))


def _layers(frame: Frame, depth: int = 0) -> list[tuple[int, object]]:
    out = [(depth, layer) for layer in frame.layers]
    if frame.inner is not None:
        out += _layers(frame.inner, depth + 1)
    return out


def _from_inner(frame: Frame) -> dict:
    """Layers keyed by (tunnel levels above the innermost packet, layer type): encapsulation adds
    outer layers without renaming the inner ones, so this is how two hops' layers line up."""
    layers = _layers(frame)
    top = max((d for d, _ in layers), default=0)
    out: dict = {}
    for depth, layer in layers:
        out.setdefault((top - depth, type(layer)), layer)
    return out


def detail_text(hop: Hop, prev: Optional[Hop]) -> Text:
    """The header stack, fields changed since the previous hop shown as before → after."""
    ev = hop.event
    out = Text()
    out.append(f"hop {hop.seq}  {safe(hop.place)}  {ev.dir or '?'}  via {safe(ev.hook)}  {ev.wire_len} bytes",
               style="bold")
    if ev.mark is not None:
        out.append(f"  mark {ev.mark:#x}")
    if ev.skb is not None:
        out.append(f"  skb {ev.skb:#x}", style="dim")
    out.append("\n")
    before = _from_inner(prev.frame) if prev is not None else {}
    layers = _layers(hop.frame)
    top = max((d for d, _ in layers), default=0)
    shown_depth = 0
    for depth, layer in layers:
        if depth > shown_depth:
            out.append("  " * depth + "inside VXLAN:\n", style="bold blue")
            shown_depth = depth
        indent = "  " * depth
        name = type(layer).__name__
        old = before.get((top - depth, type(layer)))
        out.append(f"{indent}{name:<6}", style="bold cyan" if old is not None or prev is None else "bold green")
        for field, value in zip(layer._fields, layer, strict=True):
            if field == "seglen":
                continue
            shown = _field_text(name, field, value)
            old_value = getattr(old, field, None) if old is not None else None
            if old is not None and old_value != value:
                out.append(f" {field} ")
                out.append(f"{_field_text(name, field, old_value)} → {shown}", style="bold black on yellow")
            else:
                out.append(f" {field} {shown}")
        if old is None and prev is not None:
            out.append("  (new here)", style="green")
        out.append("\n")
    if hop.frame.error:
        out.append(f"decoding stopped: {hop.frame.error}\n", style="red")
    for note in ev.notes:
        out.append("kernel  ", style="bold magenta")
        out.append(safe(note_text(note)) + "\n")
    payload = hop.frame.innermost.payload
    if payload:
        out.append(f"payload {len(payload)} bytes: {safe(payload[:48].decode('latin-1'))}\n", style="dim")
    return out


def bytes_text(j: Journey, hop: int, width: int = 96) -> Text:
    """The byte diagram (render/bytemap.py): the tunnel's bytes in blue, the figures that matter bold."""
    out = Text()
    for line in diagram(j, hop, width):
        style = "bold blue" if line.startswith(("└", "VXLAN header")) else \
            "bold" if line.startswith(("overhead", "MTU", "hop ")) else ""
        out.append(line + "\n", style=style)
    return out


def at_tunnel_end(h: Hop) -> bool:
    return any(c.kind in (ChangeKind.ENCAP, ChangeKind.DECAP) for c in h.changes)


class PacketDetail(Static):
    def show(self, j: Optional[Journey], hop: int, *, as_bytes: bool = False) -> None:
        """The header stack; at an encap or decap hop, or when asked (b), the byte diagram above it."""
        if j is None or not j.hops:
            self.update(Text("no packet selected", style="dim"))
            return
        h = j.hops[hop]
        out = detail_text(h, j.hops[hop - 1] if hop > 0 else None)
        if as_bytes or at_tunnel_end(h):
            width = max(40, self.content_region.width - 3) if self.content_region.width else 96
            out = bytes_text(j, hop, width).append("\n").append_text(out)
        self.update(out)


class ExplainPanel(Static):
    def show(self, j: Optional[Journey], hop: int) -> None:
        if j is None or not j.hops:
            self.update(Text(""))
            return
        out = Text()
        for i, para in enumerate(explain(j.hops[hop], j)):
            if i:
                out.append("\n\n")
            out.append(safe(para))
        self.update(out)


class _OneLineRows:
    """DataTable's line → (row key, line in the row), where every row is one line: looked up, not a
    list of 10,000 pairs built again after every change of the table."""

    def __init__(self, table: DataTable):
        self.table = table

    def __len__(self) -> int:
        return self.table.row_count

    def __getitem__(self, y: int):
        if not 0 <= y < self.table.row_count:
            raise IndexError(y)
        return self.table._row_locations.get_key(y), 0

    def clear(self) -> None:
        pass


class JourneyList(DataTable):
    """Every packet of the followed flows, requests and their replies paired."""

    #: fixed widths: no measuring of every row that arrives (thousands a second under load)
    COLUMNS = (("#", 5), ("role", 6), ("packet", 42), ("hops", 4))

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for label, width in self.COLUMNS:
            self.add_column(label, width=width)

    @staticmethod
    def _cells(j: Journey) -> tuple:
        role = Text(f"↩ {j.reply_to}", style="cyan") if j.reply_to is not None else \
            Text("reply" if j.direction == "reply" else "req", style="bold")
        hops = Text(f"{len(j.hops)}!", style="bold red") if j.incomplete else Text(str(len(j.hops)))
        return Text(str(j.id)), role, Text(safe(packet_label(j))), hops

    def add(self, journeys: list[Journey]) -> None:
        """Rows for ``journeys``, at the bottom, keyed by id. What DataTable.add_row does for each row
        (the cursor set again through its reactive, the columns ordered twice, an idle check:
        60 µs a row, most of a 1,000-journey intake under load in scripts/bench-tui) is done once
        for the whole batch; where Textual's table is not built as this expects, add_row each."""
        if not journeys:
            return
        try:
            from textual.widgets._data_table import DuplicateKey, Row, RowKey
            locations, data, rows, new = self._row_locations, self._data, self.rows, self._new_rows
            columns = [c.key for c in self.ordered_columns]
            was_empty = not rows
        except (AttributeError, ImportError):
            columns = []
        if len(columns) != len(self.COLUMNS):   # a Textual built otherwise, or not on_mount's columns
            for j in journeys:
                self.add_row(*self._cells(j), key=str(j.id))
            return
        for j in journeys:
            key = RowKey(str(j.id))
            if key in locations:
                raise DuplicateKey(f"The row key {key!r} already exists.")
            locations[key] = len(rows)
            data[key] = dict(zip(columns, self._cells(j)))
            rows[key] = Row(key, 1)
            new.add(key)
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()   # a cell to highlight where there was none
        self._update_count += 1
        self.check_idle()

    @property
    def _y_offsets(self):
        if not hasattr(getattr(self, "_row_locations", None), "get_key"):
            return DataTable._y_offsets.fget(self)   # a Textual built otherwise: its own way
        return _OneLineRows(self)   # add() makes every row one line

    def _update_dimensions(self, new_rows) -> None:
        """The table's size without measuring each new row's cells: every column here has a fixed
        width and every row one line. Textual measured each cell of each new row and walked all
        rows' line offsets, tens of ms per batch at 10,000 rows (scripts/bench-tui)."""
        try:
            plain = not self._labelled_row_exists and not any(c.auto_width for c in self.columns.values())
            width = sum(c.get_render_width(self) for c in self.columns.values()) + self._row_label_column_width
        except AttributeError:   # a Textual built otherwise: its own way
            plain = False
        if not plain:
            super()._update_dimensions(new_rows)
            return
        self.virtual_size = Size(width, self.row_count + (self.header_height if self.show_header else 0))

    def drop_first(self, n: int) -> bool:
        """Remove the first (oldest) ``n`` rows in one pass, the cursor staying on its row; False
        where Textual's table is not built as this expects (the caller clears and adds again).
        DataTable.remove_row renumbers every row for each row removed, and clearing and adding
        8,000 rows again held the UI for most of a second under load (scripts/bench-tui)."""
        try:
            from textual.coordinate import Coordinate
            from textual.widgets._data_table import CellKey
            rows = self.ordered_rows
            cursor = self.cursor_coordinate
            for row in rows[:n]:
                for column in self._data.get(row.key, ()):
                    self._updated_cells.discard(CellKey(row.key, column))
                del self.rows[row.key]
                del self._data[row.key]
                self._new_rows.discard(row.key)
            self._row_locations = type(self._row_locations)({row.key: i for i, row in enumerate(rows[n:])})
        except (AttributeError, ImportError, KeyError, TypeError):
            return False
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = Coordinate(max(0, cursor.row - n), cursor.column)
        self.refresh(layout=True)
        return True


def status_text(st: Optional[SourceStatus], *, filter_text: str, playing: bool, speed: float,
                follow: bool, held: int, finished: bool, problems: list[str], timed: bool = False,
                unlisted: int = 0) -> Text:
    out = Text()
    if st is not None:
        if st.kind == "live":
            out.append(f"live: {st.label}, {st.events} events ({st.rate:,.0f}/s)", style="bold green")
            out.append(f"  lost {st.lost}", style="bold red" if st.lost else "")
            if st.shed:
                out.append(f"  shed {st.shed} flows", style="bold yellow")
        else:
            out.append(f"replay: {safe(st.label)}, {st.position}", style="bold")
        if finished:
            out.append("  (done)" if st.kind == "replay" else "  (stopped)", style="dim")
    out.append(f"  │ filter: {safe(filter_text)}  │ {held} packets")
    if unlisted:
        out.append(f" ({unlisted} came too fast to list)", style="yellow")
    pace = f"real time, 1 mean gap = {1 / speed:g} s" if timed else f"{speed:g} hops/s"
    out.append(f"  │ {'▶ playing' if playing else '‖ paused'} {pace}")
    out.append(f"  │ follow latest: {'on' if follow else 'off'}")
    if problems:
        out.append(f"  │ {safe(problems[-1])}", style="bold red")
    if st is not None and st.notes:
        out.append(f"  │ {safe(st.notes[0])}", style="dim")
    return out
