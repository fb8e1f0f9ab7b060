"""memory.svg: the arena plan as a picture, buffers over execution steps against arena offset.

Each buffer of the recorded plan is a rectangle from its first to its last step (x) and over its
bytes (y, offset 0 at the bottom); kernel scratch is hatched grey. A result computed in place
starts where its operand's rectangle ends, at the same offset. A dashed line marks the lower bound. Written by hand (no matplotlib):
deterministic text, so equal plans give byte-identical files.
"""

from __future__ import annotations

from html import escape

from tfc.ir.core import Graph
from tfc.passes.memory_plan import lower_bound_bytes
from tfc.passes.verify_memory import live_segments

WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


def memory_svg(graph: Graph, arena_bytes: int) -> str:
    """The SVG text for `graph`'s recorded plan in an arena of `arena_bytes`."""
    segments = live_segments(graph)
    steps = max(len(graph.ops), 1)
    bound = lower_bound_bytes(graph)
    top_bytes = max(arena_bytes, bound, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(step: float) -> float:
        return LEFT + plot_w * step / steps

    def y(offset: float) -> float:
        return TOP + plot_h * (1 - offset / top_bytes)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ddd"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/></pattern></defs>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="14">@{escape(graph.name)}: arena {arena_bytes} B, '
           f'lower bound {bound} B ({arena_bytes / bound if bound else 1:.3f}x), '
           f'{len(segments)} buffers</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>']
    for k, s in enumerate(sorted(segments, key=lambda s: (s.start, s.offset))):
        fill = "url(#hatch)" if s.scratch_of is not None else PALETTE[k % len(PALETTE)]
        x0, x1 = x(s.start), x(s.end + 1)
        y0, y1 = y(s.offset + s.nbytes), y(s.offset)
        out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
                   f'fill="{fill}" fill-opacity="0.8" stroke="#222" stroke-width="0.5">'
                   f'<title>{escape(s.label)}: [{s.offset}, {s.offset + s.nbytes}) bytes, '
                   f'steps {s.start}..{s.end}</title></rect>')
        if x1 - x0 > 40 and y1 - y0 > 12:
            out.append(f'<text x="{x0 + 3:.1f}" y="{y1 - 3:.1f}" fill="white">'
                       f'{escape(s.label)}</text>')
    yb = y(bound)
    out.append(f'<line x1="{LEFT}" y1="{yb:.1f}" x2="{WIDTH - RIGHT}" y2="{yb:.1f}" stroke="#c00" '
               f'stroke-dasharray="6 4"/><text x="{WIDTH - RIGHT - 4}" y="{yb - 4:.1f}" fill="#c00" '
               f'text-anchor="end">lower bound</text>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        value = int(top_bytes * frac)
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
               f'execution step (op index, {steps} ops)</text>')
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">arena offset (bytes)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
