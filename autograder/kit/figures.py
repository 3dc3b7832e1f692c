"""Small SVG figures for feedback and reports: a loss curve against the reference's, a map
of where a tensor differs from its reference, and horizontal bars.

They are plain SVG text, made in microseconds, because feedback is made for every
submission: one matplotlib figure costs 40 to 200 ms on this machine, about as much as
grading a whole submission in the engine. Notebooks and nbgrader's feedback pages show
SVG as an image (`image/svg+xml`), and so does a browser.

No figure shows an expected value: a loss curve's vertical axis has no numbers, and an
error map shows relative errors only.
"""

import base64
import html
import math
import re

import torch

WIDTH, HEIGHT = 460, 250
LEFT, RIGHT, TOP, BOTTOM = 40, 20, 62, 36  # the margins around a plot
STUDENT, REFERENCE, INK, GRID = "#d9480f", "#1c7ed6", "#343a40", "#dee2e6"
MAX_POINTS = 200  # a curve is drawn through at most this many of its points
MAX_CELLS = 48  # an error map shows at most this many rows and columns
RIGHT_ERROR = 1e-6  # an entry with a smaller relative error shows white: it is right
RELATIVE_GAP = 1e-4  # a loss this far from the reference's, relatively, has left its curve


def _svg(width: int, height: int, title: str, subtitle: str, body: list[str],
         description: str) -> str:
    """An SVG figure; its <title> names it, its <desc> says what it shows (the alt text)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
            f'role="img"><title>{html.escape(f"{title}: {subtitle}" if subtitle else title)}'
            f'</title><desc>{html.escape(description)}</desc>'
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="8" y="16" font-size="12" font-weight="bold" fill="{INK}">'
            f'{html.escape(_shorten(title, width // 7))}</text>'
            f'<text x="8" y="31" font-size="10" fill="#868e96">'
            f'{html.escape(_shorten(subtitle, width // 5))}</text>{"".join(body)}</svg>')


def alt_text(svg: str) -> str:
    """What a figure shows, in words: its title, then its description."""
    parts = [re.search(f"<{tag}>(.*?)</{tag}>", svg, re.S) for tag in ("title", "desc")]
    return " ".join(html.unescape(part.group(1)).rstrip(".") + "." for part in parts if part)


def as_image(svg: str) -> str:
    """The figure as an HTML <img> with its alt text, for pages that show images only."""
    data = base64.b64encode(svg.encode()).decode()
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt_text(svg))}">'


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"


def loss_curves(student: torch.Tensor, reference: torch.Tensor, title: str,
                subtitle: str = "") -> str:
    """The student's loss per epoch against the reference's, on a shared vertical scale
    (logarithmic when every loss is positive) that shows no numbers."""
    mine, theirs = _values(student), _values(reference)
    finite = [v for v in mine + theirs if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0
    scaled = [math.log(v) if log else v for v in finite] or [0.0]
    low, high = min(scaled), max(scaled)
    high = high if high > low else low + 1
    epochs = max(len(mine), len(theirs), 2)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def point(index: int, value: float) -> str | None:
        if not math.isfinite(value) or (log and value <= 0):
            return None
        v = math.log(value) if log else value
        x = x0 + (x1 - x0) * index / (epochs - 1)
        y = y1 - (y1 - y0) * (v - low) / (high - low)
        return f"{x:.1f},{y:.1f}"

    def polyline(values: list[float], colour: str, dash: str) -> str:
        step = max(1, math.ceil(len(values) / MAX_POINTS))
        points = [point(i, v) for i, v in enumerate(values) if i % step == 0
                  or i == len(values) - 1]
        points = [p for p in points if p]
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-dasharray="{dash}" points="{" ".join(points)}"/>') if points else ""

    scale = "log scale" if log else "linear scale"
    body = [f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="{INK}"/>',
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="{INK}"/>',
            _text(x0, y1 + 14, "1", "middle"), _text(x1, y1 + 14, str(epochs), "middle"),
            _text((x0 + x1) / 2, y1 + 28, "epoch", "middle"),
            _text(14, (y0 + y1) / 2, f"loss ({scale}, no values shown)", "middle",
                  rotate=True),
            polyline(theirs, REFERENCE, "6 4"), polyline(mine, STUDENT, "none"),
            _legend(x0, y0 - 14, [(STUDENT, f"yours ({len(mine)} epochs)"),
                                  (REFERENCE, f"autograd's reference ({len(theirs)} epochs)")])]
    if any(not math.isfinite(v) for v in mine):
        body.append(_text(x1, y0 + 12, "yours became NaN or inf", "end", STUDENT))
    description = (f"A line chart of the loss per epoch, {scale}, without values: your loss "
                   f"({len(mine)} epochs, orange solid line) against autograd's reference "
                   f"({len(theirs)} epochs, blue dashed line). {_where_curves_part(mine, theirs)}")
    return _svg(WIDTH, HEIGHT, title, subtitle, body, description)


def _where_curves_part(mine: list[float], theirs: list[float]) -> str:
    """Where the student's curve leaves the reference's, in words."""
    bad = next((i for i, v in enumerate(mine) if not math.isfinite(v)), None)
    if bad is not None:
        return f"Your loss becomes NaN or infinite at epoch {bad + 1}."
    apart = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False))
                  if abs(a - b) > RELATIVE_GAP * max(abs(b), 1e-12)), None)
    if apart is not None:
        side = "above" if mine[apart] > theirs[apart] else "below"
        return f"Your curve leaves the reference at epoch {apart + 1}, {side} it."
    if len(mine) != len(theirs):
        return f"The curves agree, but yours has {len(mine)} epochs, not {len(theirs)}."
    return "The two curves lie on each other."


def error_map(got: torch.Tensor, expected: torch.Tensor, title: str, subtitle: str = "") -> str:
    """A heat map of the relative error of each entry: where got differs from expected."""
    errors = ((got - expected).abs() / expected.abs().clamp_min(1e-12)).detach().cpu()
    errors = torch.nan_to_num(errors.to(torch.float64), nan=math.inf)
    grid = errors.reshape(1, -1) if errors.dim() < 2 else errors.reshape(-1, errors.shape[-1])
    rows, cols = min(grid.shape[0], MAX_CELLS), min(grid.shape[1], MAX_CELLS)
    cut = " (its first rows and columns)" if (rows, cols) != tuple(grid.shape) else ""
    grid = grid[:rows, :cols]
    finite = grid[torch.isfinite(grid)]
    largest = finite.max().item() if finite.numel() else 1.0
    cell = max(4, min(24, (WIDTH - 2 * LEFT) // cols, (HEIGHT - TOP - 60) // rows))
    x0, y0 = LEFT, TOP - 20
    body = []
    for r in range(rows):
        for c in range(cols):
            body.append(f'<rect x="{x0 + c * cell}" y="{y0 + r * cell}" width="{cell}" '
                        f'height="{cell}" fill="{_heat(grid[r, c].item(), largest)}" '
                        f'stroke="white" stroke-width="0.5"/>')
    bottom = y0 + rows * cell
    shape = "x".join(map(str, got.shape)) or "a single number"
    body += [_text(x0, bottom + 14, f"shape {shape}{cut}: each square is one entry", "start"),
             *_colour_scale(x0, bottom + 24, largest)]
    description = (f"A heat map of the relative error of each entry of your tensor against "
                   f"autograd's (shape {shape}{cut}), white where they agree, red where they "
                   f"differ, black for NaN or inf: {_where_wrong(grid)}")
    return _svg(WIDTH, max(HEIGHT // 2, bottom + 52), title, subtitle, body, description)


def _where_wrong(grid: torch.Tensor) -> str:
    """Which entries of an error grid are wrong, in words (rows and columns from 0)."""
    wrong = ~(grid < RIGHT_ERROR)
    count, total = int(wrong.sum()), wrong.numel()
    if count == 0:
        return "no entry differs."
    if count == total:
        return "every entry is wrong."
    rows = [r for r in range(wrong.shape[0]) if wrong[r].all()]
    cols = [c for c in range(wrong.shape[1]) if wrong[:, c].all()]
    if rows and len(rows) * wrong.shape[1] == count:
        return f"every entry of row{_listed(rows)} is wrong, the other rows are right."
    if cols and len(cols) * wrong.shape[0] == count:
        return f"every entry of column{_listed(cols)} is wrong, the other columns are right."
    some_rows = [r for r in range(wrong.shape[0]) if wrong[r].any()]
    some_cols = [c for c in range(wrong.shape[1]) if wrong[:, c].any()]
    return (f"{count} of its {total} entries are wrong, in row{_listed(some_rows)} and "
            f"column{_listed(some_cols)}.")


def _listed(indices: list[int], most: int = 6) -> str:
    """' 3' or 's 0, 2 and 5 (from 0)': a list of rows or columns, its first few if long."""
    if len(indices) == 1:
        return f" {indices[0]} (from 0)"
    names = [str(index) for index in indices[:most]]
    if len(indices) > most:
        names.append(f"{len(indices) - most} more")
    return f"s {', '.join(names[:-1])} and {names[-1]} (from 0)"


def bars(labels: list[str], values: list[float], title: str, maximum: float,
         formatted: list[str], subtitle: str = "", colour: str = REFERENCE) -> str:
    """Horizontal bars, one per label, each as long as value / maximum, with its text."""
    row = 22
    label_width = min(340, 6 * max((len(label) for label in labels), default=4) + 10)
    width = label_width + 260
    body = []
    for index, (label, value, text) in enumerate(zip(labels, values, formatted, strict=True)):
        y = TOP - 20 + index * row
        length = 0 if maximum <= 0 else 180 * value / maximum
        body += [_text(label_width, y + 14, _shorten(label, label_width // 6), "end"),
                 f'<rect x="{label_width + 8}" y="{y + 3}" width="{length:.1f}" height="15" '
                 f'fill="{colour}"/>',
                 _text(label_width + 14 + length, y + 14, text, "start")]
    description = "A bar chart: " + "; ".join(
        f"{label}: {text}" for label, text in zip(labels, formatted, strict=True)) + "."
    return _svg(width, TOP - 8 + len(labels) * row, title, subtitle, body, description)


def _values(tensor: torch.Tensor) -> list[float]:
    return [float(v) for v in tensor.detach().cpu().reshape(-1).tolist()]


def _text(x: float, y: float, text: str, anchor: str, colour: str = INK,
          rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}"{turn}>'
            f'{html.escape(text)}</text>')


def _legend(x: float, y: float, entries: list[tuple[str, str]]) -> str:
    """The entries side by side on one line."""
    items = []
    for colour, label in entries:
        items.append(f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/>' + _text(x + 22, y + 4, label, "start"))
        x += 40 + 6 * len(label)
    return "".join(items)


def _heat(error: float, largest: float) -> str:
    """White for an entry that is right, deepening to red for the largest error."""
    if not math.isfinite(error):
        return "#212529"
    t = 0.0 if largest <= 0 else min(1.0, error / largest)
    if error < RIGHT_ERROR:
        t = 0.0
    red, green, blue = (round(a + (b - a) * t) for a, b in zip((248, 249, 250), (201, 42, 42),
                                                               strict=True))
    return f"rgb({red},{green},{blue})"


def _colour_scale(x: float, y: float, largest: float) -> list[str]:
    steps = 10
    cells = [f'<rect x="{x + 16 * i}" y="{y}" width="16" height="10" '
             f'fill="{_heat(largest * i / (steps - 1) + (RIGHT_ERROR if i else 0), largest)}"/>'
             for i in range(steps)]
    return [*cells, _text(x, y + 22, "0", "start"),
            _text(x + 16 * steps, y + 22, f"{largest:.2g}", "end"),
            _text(x + 16 * steps + 8, y + 9, "relative error of the entry (black: NaN or inf)",
                  "start")]
