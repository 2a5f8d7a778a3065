"""The printed visit report (reportlab): what a clinician files or hands to the patient.

Reads only saved results through patients.timeline. Photos are embedded by file path where the
storage has one (reportlab then copies the JPEG without decoding it) and ASCII85 is off: both
keep an image-heavy report well under a second.
"""

import io

from django.core.files.storage import default_storage
from django.utils import timezone
from reportlab import rl_config
from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from patients import thumbs, timeline
from patients.models import View, Visit

rl_config.useA85 = 0

INK = colors.HexColor("#1d2733")
MUTED = colors.HexColor("#5f6b7a")
LINE = colors.HexColor("#dde3ea")
ACCENT = colors.HexColor("#1f6f8b")
GOOD = colors.HexColor("#1e7d4f")
BAD = colors.HexColor("#b3261e")
WARN = colors.HexColor("#b26a00")
TREAT = colors.HexColor("#2f8f83")
BASE = colors.HexColor("#6b4fbb")
PAPERS = {"a4": A4, "letter": LETTER}
STATEMENT = ("This report supports, and does not replace, a clinician's diagnosis. Measurements come from "
             "photographs and carry the uncertainty shown; a change is marked significant only where it is "
             "larger than that uncertainty.")


def _styles():
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["Normal"], fontName="Helvetica", fontSize=9, leading=12, textColor=INK)
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5, textColor=MUTED),
        "h1": ParagraphStyle("h1", parent=body, fontName="Helvetica-Bold", fontSize=15, leading=18),
        "h2": ParagraphStyle("h2", parent=body, fontName="Helvetica-Bold", fontSize=10.5, leading=13, spaceBefore=9,
                             spaceAfter=4, textColor=ACCENT),
        "right": ParagraphStyle("right", parent=body, alignment=TA_RIGHT, fontSize=8, textColor=MUTED),
        "cell": ParagraphStyle("cell", parent=body, fontSize=8, leading=10),
        "cellr": ParagraphStyle("cellr", parent=body, fontSize=8, leading=10, alignment=TA_RIGHT),
        "statement": ParagraphStyle("statement", parent=body, fontSize=8.5, leading=11, borderColor=ACCENT,
                                    borderWidth=0.8, borderPadding=6, backColor=colors.HexColor("#f2f8fa")),
    }


def _esc(text) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _print_copy(field, name):
    """A print-size JPEG copy (made once): a 12 MP original or a full-size PNG heatmap would make a
    multi-megabyte report, and reportlab decodes PNGs slowly."""
    stored = thumbs.copy_of(field, name, thumbs.REPORT_PX)
    try:
        return default_storage.path(stored)
    except NotImplementedError:
        with default_storage.open(stored, "rb") as handle:
            return io.BytesIO(handle.read())


def _tile_source(entry):
    """The heatmap (the engine blends it over the photo and adds its legend) or else the photo."""
    result = entry.result
    if result is not None and result.heatmap:
        return _print_copy(result.heatmap, f"clinics/{entry.photo.clinic_id}/thumbs/heatmap-{result.run_id}-"
                                           f"{thumbs.REPORT_PX}.jpg")
    return _print_copy(entry.photo.file, f"clinics/{entry.photo.clinic_id}/thumbs/{entry.photo.id}-"
                                         f"{thumbs.REPORT_PX}.jpg")


class PhotoWithHeatmap(Flowable):
    """The photo with its heatmap (or the photo alone before analysis), and a caption underneath."""

    def __init__(self, entry, width, height):
        super().__init__()
        self.entry, self.width, self.height = entry, width, height

    def draw(self):
        c = self.canv
        img_h = self.height - 12
        c.setFillColor(colors.HexColor("#e9eef2"))
        c.rect(0, 12, self.width, img_h, stroke=0, fill=1)
        try:
            c.drawImage(_tile_source(self.entry), 0, 12, self.width, img_h, preserveAspectRatio=True, anchor="n")
        except (OSError, ValueError):
            c.setFillColor(MUTED)
            c.setFont("Helvetica", 7)
            c.drawCentredString(self.width / 2, 12 + img_h / 2, "image unavailable")
        c.setFillColor(INK)
        c.setFont("Helvetica-Bold", 7.5)
        c.drawString(0, 3, self.entry.label[:44])
        if self.entry.result is not None and not self.entry.result.quality_ok:
            c.setFillColor(WARN)
            c.drawRightString(self.width, 3, "quality flagged")


def _trend_chart(data, upto: Visit, width, height, units, metric="density_per_cm2"):
    """One metric per view over every visit up to this one, with uncertainty bars and treatment starts."""
    d = Drawing(width, height)
    left, bottom, right, top = 30, 16, width - 70, height - 8
    visits = [v for v in data.visits if v.visit.date <= upto.date]
    series = {}
    for v in visits:
        for p in v.photos:
            value = p.metrics.get(metric)
            if value is None or p.photo.excluded_from_trend:
                continue
            err = timeline.uncertainty(p, metric) or 0
            label = p.photo.get_view_display().replace(" close-up", "")
            series.setdefault(label, []).append((v.visit.date.toordinal(), timeline.to_display(
                metric, value, units), timeline.to_display(metric, err, units), v.is_baseline))
    if not series:
        d.add(String(width / 2, height / 2, "Needs calibrated photos" if metric != "scalp_visibility" else
                     "No analysed photos yet", fontSize=8, fillColor=MUTED, textAnchor="middle"))
        return d
    xs = [pt[0] for pts in series.values() for pt in pts]
    ys = [y for pts in series.values() for _x, v, e, _b in pts for y in (v - e, v + e)]
    x0, x1 = min(xs), max(xs)
    if x1 - x0 < 30:
        x0, x1 = x0 - 15, x1 + 15
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.1 or 5
    y0, y1 = max(0, y0 - pad), y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y):
        return bottom + (y - y0) / (y1 - y0) * (top - bottom)

    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        d.add(Line(left, sy(yv), right, sy(yv), strokeColor=LINE, strokeWidth=0.4))
        d.add(String(left - 3, sy(yv) - 2.5, f"{yv:.0f}" if y1 - y0 > 8 else f"{yv:.1f}", fontSize=6.5,
                     fillColor=MUTED, textAnchor="end"))
    for t in data.treatments:
        start = t.start.toordinal()
        if x0 <= start <= x1:
            stop = min(t.stop.toordinal() if t.stop else x1, x1)
            d.add(Rect(sx(start), bottom, max(sx(stop) - sx(start), 1), top - bottom, fillColor=colors.Color(
                0.18, 0.56, 0.51, alpha=0.10), strokeColor=None))
            d.add(Line(sx(start), bottom, sx(start), top, strokeColor=TREAT, strokeWidth=0.8, strokeDashArray=[2, 2]))
    d.add(String(left, 4, visits[0].visit.date.strftime("%b %Y"), fontSize=6.5, fillColor=MUTED))
    d.add(String(right, 4, upto.date.strftime("%b %Y"), fontSize=6.5, fillColor=MUTED, textAnchor="end"))
    palette = [ACCENT, colors.HexColor("#c2703d"), colors.HexColor("#7a5cc9"), colors.HexColor("#3d9a5b"),
               colors.HexColor("#b0446e"), colors.HexColor("#5b6b7c")]
    order = [label.replace(" close-up", "") for label in View.labels]
    for i, (label, pts) in enumerate(series.items()):
        # The same view has the same colour in every chart.
        colour = palette[order.index(label) % len(palette)] if label in order else palette[i % len(palette)]
        if len(pts) > 1:
            d.add(PolyLine([c for x, v, _e, _b in pts for c in (sx(x), sy(v))], strokeColor=colour, strokeWidth=1.1))
        for x, v, e, is_base in pts:
            if e:
                d.add(Line(sx(x), sy(v - e), sx(x), sy(v + e), strokeColor=colour, strokeWidth=0.6))
            d.add(Circle(sx(x), sy(v), 2.4 if is_base else 1.7, fillColor=BASE if is_base else colour,
                         strokeColor=colors.white, strokeWidth=0.4))
        d.add(Rect(right + 8, top - 10 - i * 11, 7, 2.5, fillColor=colour, strokeColor=None))
        d.add(String(right + 18, top - 11 - i * 11, label[:16], fontSize=6.5, fillColor=INK))
    return d


def _change_cell(change, better_up, styles):
    if not change:
        return Paragraph("<font color='#98a2ae'>·</font>", styles["cellr"])
    pct, unc = change.get("change_pct") or 0, change.get("uncertainty_pct") or 0
    sign = "+" if pct > 0 else "−" if pct < 0 else "±"
    text = f"{sign}{abs(pct):.1f}% <font size=6.5 color='#5f6b7a'>± {unc:.1f}</font>"
    if change.get("significant"):
        good = (pct > 0) == better_up
        text = f"<font color='{'#1e7d4f' if good else '#b3261e'}'><b>{text} *</b></font>"
    return Paragraph(text, styles["cellr"])


METRIC_ROWS = [("density_per_cm2", "Density", 0, True), ("hair_count", "Hair count", 0, True),
               ("mean_caliber_um", "Mean caliber", 1, True), ("scalp_visibility", "Scalp visibility", 1, False),
               ("vellus_fraction", "Vellus fraction", 1, False), ("part_width_mm", "Part width", 1, False)]


def _metrics_table(entry, styles, units, width):
    rows = [["View", "Measure", "This visit", "vs baseline", "vs previous"]]
    spans = []
    for photo in entry.photos:
        if not photo.result:
            continue
        first = len(rows)
        for key, label, decimals, better_up in METRIC_ROWS:
            value = photo.metrics.get(key)
            if value is None:
                continue
            shown = timeline.to_display(key, value, units)
            unit = timeline.unit_label(key, units)
            rows.append([
                Paragraph(f"<b>{_esc(photo.label)}</b>" + (" <font color='#b26a00'>(excluded)</font>"
                                                           if photo.photo.excluded_from_trend else ""), styles["cell"])
                if len(rows) == first else "",
                label, f"{shown:,.{decimals}f} {unit}",
                _change_cell(photo.change("baseline", key), better_up, styles),
                _change_cell(photo.change("previous", key), better_up, styles),
            ])
        if len(rows) > first + 1:
            spans.append(("SPAN", (0, first), (0, len(rows) - 1)))
        spans.append(("LINEABOVE", (0, first), (-1, first), 0.6, LINE))
    table = Table(rows, colWidths=[width * f for f in (0.24, 0.2, 0.18, 0.19, 0.19)], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7),
        ("TEXTCOLOR", (0, 0), (-1, 0), MUTED),
        ("FONT", (1, 1), (2, -1), "Helvetica", 8),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        *spans,
    ]))
    return table


def _caveats(entry, data):
    lines = []
    for p in entry.photos:
        for reason in p.quality.get("reasons", []):
            lines.append(f"{p.label}: {reason}")
        for comparison in p.comparisons.values():
            if not comparison.data.get("comparable"):
                why = "; ".join(comparison.data.get("reasons", [])) or "the photos could not be registered"
                lines.append(f"{p.label}: not comparable with the {comparison.get_against_display().lower()} "
                             f"photo ({why}); no change is reported for that pair.")
        if p.photo.excluded_from_trend:
            lines.append(f"{p.label}: excluded from the trend by a clinician.")
        if p.stale_baseline:
            lines.append(f"{p.label}: measured against an earlier baseline; its re-analysis against the current "
                         "baseline was pending when this report was printed.")
        if p.photo.mm_per_px_override:
            lines.append(f"{p.label}: scale set by a clinician ({p.photo.mm_per_px_override:.4f} mm/px).")
        if p.calibration.get("source") == "none":
            lines.append(f"{p.label}: no calibration; sizes are not in physical units.")
        if p.pending:
            lines.append(f"{p.label}: a newer analysis is {p.latest_run.get_status_display().lower()}; "
                         "this report shows the last completed result.")
        if p.result is None:
            lines.append(f"{p.label}: not analysed yet.")
    return lines


def _verdict(line) -> str:
    if line["verdict"] == "not-comparable":
        return "not comparable"
    if line["verdict"] == "pending":
        return "being re-measured against the new baseline"
    change = line["change"]
    word = "within noise" if line["verdict"] == "stable" else line["verdict"]
    return f"{change['change_pct']:+.1f}% ± {change['uncertainty_pct']:.1f} ({word})"


def _header_footer(clinic, patient, visit):
    def draw(canvas, doc):
        canvas.saveState()
        width, height = doc.pagesize
        canvas.setStrokeColor(LINE)
        canvas.line(doc.leftMargin, 14 * mm, width - doc.rightMargin, 14 * mm)
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(doc.leftMargin, 10 * mm, f"{clinic.name} · {patient.last_name}, {patient.first_name} "
                                                   f"({patient.external_id}) · visit {visit.date:%d %b %Y}")
        canvas.drawRightString(width - doc.rightMargin, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()
    return draw


def visit_report_pdf(*, visit: Visit, clinic, paper: str = "a4", author: str = "") -> bytes:
    patient = visit.patient
    data = timeline.load_timeline(patient)
    entry = data.visit(visit.id)
    previous = data.previous(entry)
    units = clinic.units
    styles = _styles()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=PAPERS.get(paper, A4), leftMargin=16 * mm, rightMargin=16 * mm,
                            topMargin=14 * mm, bottomMargin=20 * mm, title=f"Visit report {patient.external_id} "
                            f"{visit.date:%Y-%m-%d}", author=clinic.name, subject="Hair-loss visit report")
    width = doc.width - 12  # the frame pads 6 pt on each side; tables then align with the text
    story = []

    header = "<br/>".join(_esc(line) for line in clinic.report_header.splitlines() if line.strip())
    story.append(Table([[Paragraph(_esc(clinic.name), styles["h1"]),
                         Paragraph(f"<b>Visit report</b><br/>printed {timezone.localtime():%d %b %Y %H:%M}"
                                   + (f" by {_esc(author)}" if author else ""), styles["right"])],
                        [Paragraph(header, styles["small"]), ""]],
                       colWidths=[width * 0.68, width * 0.32],
                       style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, -1), (-1, -1), 1.2, ACCENT),
                              ("BOTTOMPADDING", (0, -1), (-1, -1), 6), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    story.append(Spacer(1, 6))

    baseline = data.baseline.visit if data.baseline else None
    facts = [
        ("Patient", f"{patient.last_name}, {patient.first_name}"), ("Record", patient.external_id),
        ("Born", f"{patient.date_of_birth:%d %b %Y}" if patient.date_of_birth else "—"),
        ("Sex at birth", patient.get_sex_at_birth_display()),
        ("Visit", f"{visit.date:%d %b %Y} · {visit.get_kind_display()}"),
        ("Clinician", (visit.clinician.get_full_name() or visit.clinician.username) if visit.clinician else "—"),
        ("Baseline", f"{baseline.date:%d %b %Y}" if baseline else "—"),
        ("Previous visit", f"{previous.visit.date:%d %b %Y}" if previous else "—"),
    ]
    cells = [[Paragraph(f"<font color='#5f6b7a'>{k}</font><br/><b>{_esc(v)}</b>", styles["cell"]) for k, v in
              facts[i:i + 4]] for i in (0, 4)]
    story.append(Table(cells, colWidths=[width / 4] * 4, style=[("LEFTPADDING", (0, 0), (-1, -1), 0),
                                                                 ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]))

    if not entry.is_baseline and entry.photos:
        lines = timeline.headline(data, entry)
        verdicts = "; ".join(f"{line['entry'].label}: {_verdict(line)}" for line in lines)
        story.append(Spacer(1, 4))
        story.append(Paragraph(f"<b>{_esc(timeline.headline_summary(lines))}</b><br/>"
                               f"<font size=7.5 color='#5f6b7a'>Change since baseline per view (density, or scalp "
                               f"visibility without a scale) — {_esc(verdicts)}</font>",
                               styles["body"]))
    story.append(Paragraph("Views and heatmaps", styles["h2"]))
    per_row = 3
    cell_w = (width - (per_row - 1) * 6) / per_row
    tiles = [PhotoWithHeatmap(p, cell_w, cell_w * 0.82 + 12) for p in entry.photos]
    if tiles:
        grid = [tiles[i:i + per_row] + [""] * (per_row - len(tiles[i:i + per_row]))
                for i in range(0, len(tiles), per_row)]
        story.append(Table(grid, colWidths=[cell_w + 6] * (per_row - 1) + [cell_w], style=[
            ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
            ("RIGHTPADDING", (-1, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    else:
        story.append(Paragraph("No photos in this visit.", styles["body"]))

    story.append(CondPageBreak(60 * mm))
    story.append(Paragraph("Measurements", styles["h2"]))
    story.append(_metrics_table(entry, styles, units, width))
    story.append(Paragraph("Change in percent ± its uncertainty. <b>*</b> significant: larger than the "
                           "uncertainty (green better, red worse); other changes are within measurement noise.",
                           styles["small"]))

    half = (width - 10) / 2
    charts = Table([[Paragraph(f"Density ({timeline.unit_label('density_per_cm2', units)})", styles["small"]),
                     Paragraph("Scalp visibility (%)", styles["small"])],
                    [_trend_chart(data, visit, half, 44 * mm, units),
                     _trend_chart(data, visit, half, 44 * mm, units, metric="scalp_visibility")]],
                   colWidths=[half + 10, half], style=[("LEFTPADDING", (0, 0), (-1, -1), 0),
                                                       ("RIGHTPADDING", (0, 0), (-1, -1), 0)])
    story.append(KeepTogether([Paragraph("Trend", styles["h2"]), charts,
                               Paragraph("Dots: each visit (baseline in purple), bars: uncertainty; shaded: "
                                         "treatment periods, dashed line at each start.", styles["small"])]))

    ai, grade = entry.ai_grade, entry.clinician_grade
    grading = [[Paragraph("<font color='#5f6b7a'>AI suggestion</font><br/>" + (
        f"<b>{_esc(str(ai.get('scale', '')).title())} {_esc(ai.get('value', ''))}</b> · "
        f"{(ai.get('confidence') or 0) * 100:.0f}% confidence" if ai else "none"), styles["cell"]),
        Paragraph("<font color='#5f6b7a'>Confirmed grade (clinician)</font><br/>" + (
            f"<b>{_esc(grade.get_scale_display())} {_esc(grade.value)}</b> · "
            f"{_esc(grade.graded_by.get_full_name() or grade.graded_by.username) if grade.graded_by else '—'}, "
            f"{timezone.localtime(grade.graded_at):%d %b %Y}" if grade else "<b>not confirmed</b>"), styles["cell"])]]
    story.append(KeepTogether([Paragraph("Severity grade", styles["h2"]),
                               Table(grading, colWidths=[width / 2] * 2, style=[
                                   ("BOX", (1, 0), (1, 0), 0.8, ACCENT), ("BOX", (0, 0), (0, 0), 0.5, LINE),
                                   ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)])]))

    story.append(Paragraph("Treatments", styles["h2"]))
    if data.treatments:
        rows = [["Treatment", "Dose", "Start", "Stop"]] + [
            [Paragraph(_esc(t.name), styles["cell"]), Paragraph(_esc(t.dose or "—"), styles["cell"]),
             f"{t.start:%d %b %Y}", f"{t.stop:%d %b %Y}" if t.stop else "ongoing"] for t in data.treatments]
        story.append(Table(rows, colWidths=[width * f for f in (0.36, 0.34, 0.15, 0.15)], style=[
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7), ("TEXTCOLOR", (0, 0), (-1, 0), MUTED),
            ("FONT", (2, 1), (-1, -1), "Helvetica", 8), ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
            ("LINEBELOW", (0, 1), (-1, -1), 0.3, LINE), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    else:
        story.append(Paragraph("None recorded.", styles["body"]))

    story.append(Paragraph("Notes", styles["h2"]))
    for note in entry.notes:
        who = (note.author.get_full_name() or note.author.username) if note.author else "—"
        edited = " (edited)" if getattr(note, "revision_count", 0) else ""
        story.append(Paragraph(f"<font color='#5f6b7a'>{_esc(who)}, {timezone.localtime(note.created_at):%d %b %Y}"
                               f"{edited}</font><br/>{_esc(note.text).replace(chr(10), '<br/>')}", styles["body"]))
        story.append(Spacer(1, 4))
    if not entry.notes:
        story.append(Paragraph("No notes for this visit.", styles["body"]))

    caveats = _caveats(entry, data)
    story.append(Paragraph("Quality caveats", styles["h2"]))
    story.append(Paragraph("<br/>".join("• " + _esc(c) for c in caveats) if caveats else
                           "No quality issues were flagged for this visit.", styles["body"]))

    story.append(Spacer(1, 10))
    story.append(KeepTogether([
        Paragraph(STATEMENT, styles["statement"]), Spacer(1, 26),
        Table([["", "", ""], ["Clinician (name)", "Signature", "Date"]], colWidths=[width * 0.4, width * 0.38,
                                                                                    width * 0.22], rowHeights=[16, 12],
              style=[("LINEABOVE", (0, 1), (-1, 1), 0.8, INK), ("FONT", (0, 1), (-1, 1), "Helvetica", 7),
                     ("TEXTCOLOR", (0, 1), (-1, 1), MUTED), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                     ("RIGHTPADDING", (0, 0), (-1, -1), 14)]),
    ]))
    draw = _header_footer(clinic, patient, visit)
    doc.build(story, onFirstPage=draw, onLaterPages=draw)
    return out.getvalue()
