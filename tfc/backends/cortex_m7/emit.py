"""Renders a lowered model into the files of an output directory (text only, deterministic).

The jinja templates in `templates/` only loop over the dataclasses of `lower.py`; C literals come
from the filters defined here (`c_array`, `c_float`, `c_ident`, `c_shape`).
"""

from __future__ import annotations

import re
from functools import lru_cache

import jinja2
import numpy as np

from tfc.backends.cortex_m7.lower import LoweredModel
from tfc.backends.cortex_m7.target import Target

NAMESPACE_HEADER = "tfc_namespace.h"
VALUES_PER_LINE = {"int8_t": 16, "uint8_t": 16, "int16_t": 12, "int32_t": 8, "float": 6}


def c_float(x: float) -> str:
    """A C float literal that reads back as exactly the same float32."""
    v = np.float32(x)
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "HUGE_VALF" if v > 0 else "(-HUGE_VALF)"
    text = str(v)
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def _c_int(v: int) -> str:
    # -2147483648 is not an int literal in C (it is unary minus on a too-large constant).
    return "(-2147483647 - 1)" if v == -(1 << 31) else str(v)


def c_array(values: np.ndarray, indent: str = "    ") -> str:
    """The body of a C array initializer: comma-separated literals, a few per line."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.float32:
        items, per_line = [c_float(x) for x in flat.tolist()], VALUES_PER_LINE["float"]
    else:
        items = [_c_int(int(x)) for x in flat.tolist()]
        per_line = {1: 16, 2: 12}.get(flat.dtype.itemsize, 8)
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(indent + line for line in lines)


def c_ident(name: str) -> str:
    """A valid C identifier made from any name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


def c_shape(shape) -> str:
    return "[" + "x".join(str(d) for d in shape) + "]"


def strip_tfc(symbol: str) -> str:
    return symbol[len("tfc_"):] if symbol.startswith("tfc_") else symbol


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("tfc.backends.cortex_m7"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(c_array=c_array, c_float=c_float, c_ident=c_ident, c_shape=c_shape,
                       strip_tfc=strip_tfc)
    return env


def render_sources(m: LoweredModel, target: Target, version: str, source: str) -> dict[str, str]:
    """filename -> text for the generated C, the runtime copy, the namespace header and Makefile."""
    from tfc.backends.cortex_m7 import kernels

    runtime = {p.name: p.read_text() for p in sorted(kernels.RUNTIME_DIR.iterdir())
               if p.suffix in (".c", ".h") and p.name != NAMESPACE_HEADER}
    runtime_c = sorted(n for n in runtime if n.endswith(".c"))
    runtime_h = sorted(n for n in runtime if n.endswith(".h"))
    ctx = dict(m=m, p=m.prefix, P=m.prefix.upper(), version=version, source=source, target=target,
               single_io=len(m.inputs) == 1 and len(m.outputs) == 1,
               quantized=any(io.scale is not None for io in m.inputs + m.outputs),
               arena_alloc=max(m.arena_bytes, 16),
               symbols=sorted(set(kernels.runtime_symbols())),
               sources=["model.c", "weights.c"] + runtime_c,
               headers=["model.h", "model_guard.h", NAMESPACE_HEADER] + runtime_h)
    env = environment()
    files = {
        "model.h": env.get_template("model.h.j2").render(ctx),
        "model.c": env.get_template("model.c.j2").render(ctx),
        "weights.c": env.get_template("weights.c.j2").render(ctx),
        NAMESPACE_HEADER: env.get_template("tfc_namespace.h.j2").render(ctx),
        "harness.c": env.get_template("harness.c.j2").render(ctx),
        "model_guard.h": env.get_template("model_guard.h.j2").render(ctx),
        "memory.svg": m.memory_svg,
        "Makefile": env.get_template("Makefile.j2").render(ctx),
    }
    files.update(runtime)
    return files


def render_report_md(report: dict) -> str:
    return environment().get_template("report.md.j2").render(r=report)
