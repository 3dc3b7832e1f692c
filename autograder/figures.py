"""Small SVG figures for feedback and reports: a loss curve against the reference's, a map
of where a tensor differs from its reference, and horizontal bars.

They are plain SVG text, made in microseconds, because feedback is made for every
submission: one matplotlib figure costs 40 to 200 ms on this machine, about as much as
grading a whole submission in the engine. Notebooks and nbgrader's feedback pages show
SVG as an image (`image/svg+xml`), and so does a browser.

No figure shows an expected value: a loss curve's vertical axis has no numbers, and an
error map shows relative errors only.
"""

import html
import math

import torch

WIDTH, HEIGHT = 460, 250
LEFT, RIGHT, TOP, BOTTOM = 40, 20, 62, 36  # the margins around a plot
STUDENT, REFERENCE, INK, GRID = "#d9480f", "#1c7ed6", "#343a40", "#dee2e6"
MAX_POINTS = 200  # a curve is drawn through at most this many of its points
MAX_CELLS = 48  # an error map shows at most this many rows and columns


def _svg(width: int, height: int, title: str, subtitle: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
            f'role="img"><title>{html.escape(f"{title}: {subtitle}" if subtitle else title)}'
            f'</title><rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="8" y="16" font-size="12" font-weight="bold" fill="{INK}">'
            f'{html.escape(_shorten(title, width // 7))}</text>'
            f'<text x="8" y="31" font-size="10" fill="#868e96">'
            f'{html.escape(_shorten(subtitle, width // 5))}</text>{"".join(body)}</svg>')


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
    return _svg(WIDTH, HEIGHT, title, subtitle, body)


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
    return _svg(WIDTH, max(HEIGHT // 2, bottom + 52), title, subtitle, body)


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
    return _svg(width, TOP - 8 + len(labels) * row, title, subtitle, body)


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
    if error < 1e-6:
        t = 0.0
    red, green, blue = (round(a + (b - a) * t) for a, b in zip((248, 249, 250), (201, 42, 42),
                                                               strict=True))
    return f"rgb({red},{green},{blue})"


def _colour_scale(x: float, y: float, largest: float) -> list[str]:
    steps = 10
    cells = [f'<rect x="{x + 16 * i}" y="{y}" width="16" height="10" '
             f'fill="{_heat(largest * i / (steps - 1) + (1e-6 if i else 0), largest)}"/>'
             for i in range(steps)]
    return [*cells, _text(x, y + 22, "0", "start"),
            _text(x + 16 * steps, y + 22, f"{largest:.2g}", "end"),
            _text(x + 16 * steps + 8, y + 9, "relative error of the entry (black: NaN or inf)",
                  "start")]
