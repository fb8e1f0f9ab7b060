"""Host harness for the runtime kernels: one-op IR graphs -> C program -> outputs vs interpreter.

Each test builds a few small graphs (`Case`s), and `kernels_host.check(cases)` lowers them with
`kernels.lower_op` through a test context that declares every value as a static C array, writes
one program that runs all cases and dumps their outputs to stdout, builds it against the runtime
(compiled once per session, -Werror, ASan + UBSan) and compares with `tfc.ir.interp.run`:
bit-exact for integer outputs, allclose for float32 ones.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tfc.backends.cortex_m7 import kernels
from tfc.ir import interp
from tfc.ir.core import Builder, Graph, Value
from tfc.ir.ops import verify_graph
from tfc.ir.quant_math import quantize_multiplier
from tfc.ir.types import Quant, TensorType

HOST_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-g",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
C_TYPES = {"f32": "float", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "u8": "uint8_t"}


@dataclass
class Case:
    graph: Graph
    inputs: list[np.ndarray]
    label: str = ""


@dataclass
class HarnessContext:
    """The emitter's ctx protocol, backed by static arrays in the test program."""

    prefix: str
    decls: list[str] = field(default_factory=list)
    symbols: dict[int, str] = field(default_factory=dict)
    data: dict[int, np.ndarray] = field(default_factory=dict)  # graph inputs

    def buf(self, value: Value) -> str:
        if id(value) not in self.symbols:
            symbol = f"{self.prefix}_{value.name}"
            producer = value.producer
            if producer is not None and producer.name == "const":
                self._declare(symbol, producer.attrs["value"].array, const=True)
            elif id(value) in self.data:
                self._declare(symbol, self.data[id(value)])
            else:
                n = max(value.type.numel, 1)
                self.decls.append(f"static {C_TYPES[value.type.dtype]} {symbol}[{n}];")
            self.symbols[id(value)] = symbol
        return self.symbols[id(value)]

    def scratch(self, nbytes: int, ctype: str = "int8_t") -> str:
        """Kernel scratch: a fresh word-aligned static buffer per request."""
        symbol = f"{self.prefix}_scratch{len(self.decls)}"
        words = max(-(-int(nbytes) // 4), 1)
        self.decls.append(f"static uint32_t {symbol}[{words}];")
        return f"(({ctype} *){symbol})"

    def const_array(self, hint: str, array: np.ndarray) -> str:
        symbol = f"{self.prefix}_k{len(self.decls)}_{hint}"
        self._declare(symbol, np.asarray(array), const=True)
        return symbol

    def _declare(self, symbol: str, array: np.ndarray, const: bool = False) -> None:
        from tfc.ir.types import dtype_of_numpy

        ctype = C_TYPES[dtype_of_numpy(array.dtype)]
        flat = array.reshape(-1)
        if array.dtype == np.float32:
            body = ", ".join(kernels.c_float(v) for v in flat.tolist())
        else:
            body = ", ".join(str(v) for v in flat.tolist())
        qualifier = "static const" if const else "static"
        self.decls.append(f"{qualifier} {ctype} {symbol}[{max(flat.size, 1)}] = {{{body or '0'}}};")


class HostKernels:
    """Builds and runs harness programs against a once-per-session build of the runtime."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.include = workdir / "include"
        self.include.mkdir()
        (self.include / "tfc_namespace.h").write_text("/* standalone kernel tests: no prefix */\n")
        self.objects = []
        for src in sorted(kernels.RUNTIME_DIR.glob("*.c")):
            obj = workdir / (src.stem + ".o")
            _cc(["-c", str(src), "-o", str(obj)], self.include)
            self.objects.append(obj)
        self.count = 0

    def run_program(self, source: str) -> bytes:
        """Builds a C program (which may include "tfc_runtime.h") with the runtime; its stdout."""
        self.count += 1
        src = self.workdir / f"program{self.count}.c"
        exe = self.workdir / f"program{self.count}"
        src.write_text(source)
        _cc([str(src), *map(str, self.objects), "-o", str(exe), "-lm"], self.include)
        proc = subprocess.run([str(exe)], capture_output=True, timeout=60)
        assert proc.returncode == 0, f"{exe} failed:\n{proc.stderr.decode(errors='replace')[-4000:]}"
        return proc.stdout

    def run(self, cases: list[Case]) -> list[list[np.ndarray]]:
        """Every case's outputs as computed by the C kernels."""
        decls, bodies = [], []
        for i, case in enumerate(cases):
            ctx = HarnessContext(f"c{i}", data={id(v): a for v, a in zip(case.graph.inputs, case.inputs)})
            # Inputs an empty op never reads must still count as used under -Werror.
            touches = [f"    (void){ctx.buf(v)};\n" for v in case.graph.inputs]
            calls = [call for op in case.graph.ops for call in kernels.lower_op(op, ctx)]
            writes = [f"    fwrite({ctx.buf(v)}, 1, {v.type.nbytes}, stdout);"
                      for v in case.graph.outputs]
            decls += ctx.decls
            bodies.append(f"static void case{i}(void)\n{{\n"
                          + "".join(touches) + "".join(f"    {c.render()}\n" for c in calls)
                          + "\n".join(writes) + "\n}\n")
        main = ("int main(void)\n{\n" + "".join(f"    case{i}();\n" for i in range(len(cases)))
                + "    return 0;\n}\n")
        source = ('#include <stdio.h>\n#include "tfc_runtime.h"\n\n' + "\n".join(decls) + "\n\n"
                  + "\n".join(bodies) + "\n" + main)
        raw, pos, results = self.run_program(source), 0, []
        for case in cases:
            outs = []
            for v in case.graph.outputs:
                n = v.type.nbytes
                outs.append(np.frombuffer(raw[pos:pos + n], dtype=v.type.np_dtype).reshape(v.type.shape))
                pos += n
            results.append(outs)
        assert pos == len(raw), f"harness wrote {len(raw)} bytes, expected {pos}"
        return results

    def check(self, cases: list[Case], rtol: float = 1e-5, atol: float = 1e-5) -> None:
        """C outputs == interpreter outputs: exactly for integers, allclose for float32."""
        for case in cases:
            verify_graph(case.graph)
        for case, got in zip(cases, self.run(cases)):
            want = interp.run(case.graph, case.inputs)
            for g, w, v in zip(got, want, case.graph.outputs):
                where = f"case {case.label or case.graph.name}, output %{v.name}"
                if v.type.dtype == "f32":
                    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=where)
                else:
                    if not np.array_equal(g, w):
                        bad = np.argwhere(g != w)[:5].tolist()
                        raise AssertionError(f"{where}: {int((g != w).sum())} of {g.size} elements "
                                             f"differ, first at {bad}: got "
                                             f"{[int(g[tuple(i)]) for i in bad]}, want "
                                             f"{[int(w[tuple(i)]) for i in bad]}")


def _cc(args: list[str], include: Path) -> None:
    cmd = ["gcc", *HOST_CFLAGS, f"-I{kernels.RUNTIME_DIR}", f"-I{include}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-4000:]}"


# -- graph building helpers ---------------------------------------------------------------------

def one_op_graph(name: str, input_types: list[TensorType], build) -> Graph:
    """A graph whose inputs have `input_types`; `build(builder, *inputs)` returns its output(s)."""
    g = Graph(name)
    xs = [g.add_input(t, f"x{i}") for i, t in enumerate(input_types)]
    out = build(Builder(g), *xs)
    g.outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    return g


def random_i8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def random_f32(rng, shape, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def i8_type(shape, scale: float = 0.05, zp: int = 0) -> TensorType:
    return TensorType(tuple(shape), "i8", Quant.per_tensor(scale, zp))


def f32_type(shape) -> TensorType:
    return TensorType(tuple(shape), "f32")


def requant_pair(real: float) -> tuple[int, int]:
    return quantize_multiplier(float(real))
