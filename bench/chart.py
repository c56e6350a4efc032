"""A PNG line chart of the ttft benchmark (TTFT against turn number), drawn with Pillow only."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"A_project": (31, 119, 180), "B_volatile_first": (214, 39, 40)}
LABELS = {"A_project": "A: project layout (volatile block last)",
          "B_volatile_first": "B: volatile block after the system message"}


ROLLING = 9  # turns in the rolling median drawn over the per-turn line


def tint(colour: tuple[int, int, int], amount: float = 0.6) -> tuple[int, int, int]:
    """The colour mixed with white."""
    return tuple(int(c + (255 - c) * amount) for c in colour)  # type: ignore[return-value]


def rolling_median(values: list, window: int) -> list:
    """Centred rolling median (shorter windows at the ends)."""
    out = []
    half = window // 2
    for i in range(len(values)):
        chunk = sorted(v for v in values[max(0, i - half):i + half + 1] if v is not None)
        out.append(chunk[len(chunk) // 2] if chunk else None)
    return out


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 without a sized default font
        return ImageFont.load_default()


def nice_step(span: float, ticks: int = 6) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def text_size(draw: ImageDraw.ImageDraw, text: str, f) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    return right - left, bottom - top


def draw_ttft(result: dict, path: str | Path, width: int = 1200, height: int = 700) -> Path:
    """Draw TTFT (ms) per turn for each variant of a ttft result; returns the PNG's path."""
    series = {name: result["per_turn"][name]["ttft_ms"] for name in COLOURS if name in result["per_turn"]}
    n = max(len(v) for v in series.values())
    ymax_data = max(max(v) for v in series.values() if v)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    title_f, label_f, tick_f = font(24), font(18), font(15)

    left, right, top, bottom = 95, 30, 175, 80
    x0, x1, y0, y1 = left, width - right, top, height - bottom  # plot area (y0 top, y1 bottom)

    title = "Time to first token as the conversation grows"
    tw, _ = text_size(draw, title, title_f)
    draw.text(((width - tw) / 2, 14), title, fill="black", font=title_f)
    subtitle = (f"{result.get('model', 'model')}, n_ctx {result.get('n_ctx')}, short_term_mem "
                f"{result.get('short_term_mem')}, long_term_mem {result.get('long_term_mem')}, max_tokens "
                f"{result.get('max_tokens')}; in-process ChatService, A and B interleaved turn by turn")
    sw, _ = text_size(draw, subtitle, tick_f)
    draw.text(((width - sw) / 2, 46), subtitle, fill=(80, 80, 80), font=tick_f)

    ystep = nice_step(ymax_data)
    ymax = math.ceil(ymax_data / ystep) * ystep
    xstep = nice_step(n, 10)
    xstep = max(1, int(round(xstep)))

    def px(turn: float) -> float:
        return x0 + (turn - 1) / max(1, n - 1) * (x1 - x0)

    def py(value: float) -> float:
        return y1 - value / ymax * (y1 - y0)

    # grid and ticks
    value = 0.0
    while value <= ymax + 1e-9:
        y = py(value)
        draw.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        draw.line([(x0 - 6, y), (x0, y)], fill="black")
        label = f"{value:g}"
        lw, lh = text_size(draw, label, tick_f)
        draw.text((x0 - 10 - lw, y - lh / 2 - 3), label, fill="black", font=tick_f)
        value += ystep
    ticks = [1] + list(range(xstep, n + 1, xstep))
    for turn in ticks:
        x = px(turn)
        draw.line([(x, y0), (x, y1)], fill=(240, 240, 240))
        draw.line([(x, y1), (x, y1 + 6)], fill="black")
        label = str(turn)
        lw, _ = text_size(draw, label, tick_f)
        draw.text((x - lw / 2, y1 + 10), label, fill="black", font=tick_f)

    # shaded early and late ranges the summary compares
    for key in ("early_turns", "late_turns"):
        if key in result and n > 1:
            a, b = result[key]
            draw.rectangle([px(a), y0, px(b), y1], outline=(200, 200, 200))
            tag = "early" if key == "early_turns" else "late"
            draw.text((px(a) + 4, y0 + 4), f"{tag} {a}-{b}", fill=(150, 150, 150), font=tick_f)

    # axes
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill="black", width=2)
    xl = "turn"
    lw, _ = text_size(draw, xl, label_f)
    draw.text(((x0 + x1) / 2 - lw / 2, height - 40), xl, fill="black", font=label_f)
    yl = "TTFT (ms)"
    lw, lh = text_size(draw, yl, label_f)
    label_img = Image.new("RGBA", (lw + 4, lh + 8), (255, 255, 255, 0))
    ImageDraw.Draw(label_img).text((2, 0), yl, fill="black", font=label_f)
    rotated = label_img.rotate(90, expand=True)
    img.paste(rotated, (12, int((y0 + y1) / 2 - rotated.height / 2)), rotated)

    # lines: every turn thin and pale, a rolling median thick (when there are enough turns)
    smooth = n >= 3 * ROLLING
    for name, values in series.items():
        points = [(px(i + 1), py(v)) for i, v in enumerate(values) if v is not None]
        colour = tint(COLOURS[name]) if smooth else COLOURS[name]
        if len(points) > 1:
            draw.line(points, fill=colour, width=1 if smooth else 2, joint="curve")
        for x, y in points if len(points) <= 30 else []:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=COLOURS[name])
    if smooth:
        for name, values in series.items():
            rolled = rolling_median(values, ROLLING)
            points = [(px(i + 1), py(v)) for i, v in enumerate(rolled) if v is not None]
            draw.line(points, fill=COLOURS[name], width=4, joint="curve")

    # legend
    entries = []
    for name in series:
        s = result.get("summary", {}).get(name, {})
        extra = ""
        if s.get("ttft_ms_median_late") is not None:
            extra = f"  (median early {s['ttft_ms_median_early']:.0f} ms, late {s['ttft_ms_median_late']:.0f} ms)"
        entries.append((name, LABELS.get(name, name) + extra))
    widths = [text_size(draw, label, tick_f)[0] for _, label in entries]
    box_w = max(widths) + 60
    if smooth:
        note = f"pale: every turn; bold: rolling median of {ROLLING} turns"
        entries_note = note
    else:
        entries_note = ""
    if entries_note:
        widths.append(text_size(draw, entries_note, tick_f)[0])
        box_w = max(widths) + 60
    box_h = 28 * len(entries) + 12 + (24 if entries_note else 0)
    bx, by = x0, 72
    draw.rectangle([bx, by, bx + box_w, by + box_h], fill="white", outline=(120, 120, 120))
    for k, (name, label) in enumerate(entries):
        y = by + 10 + 28 * k + 8
        draw.line([(bx + 10, y), (bx + 40, y)], fill=COLOURS[name], width=4)
        draw.text((bx + 50, y - 10), label, fill="black", font=tick_f)
    if entries_note:
        draw.text((bx + 50, by + 10 + 28 * len(entries)), entries_note, fill=(90, 90, 90), font=tick_f)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "ttft.json")
    target = Path(sys.argv[2] if len(sys.argv) > 2 else source.with_suffix(".png"))
    print(draw_ttft(json.loads(source.read_text()), target))
