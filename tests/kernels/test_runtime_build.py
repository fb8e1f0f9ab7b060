"""The runtime as a C library: it builds warning-free for the Cortex-M7, its int8 kernels use no
floating point, its exported names are exactly `runtime_symbols()` and can be prefixed so two
models link together; and lowering rejects what no kernel computes with a one-line error."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tool_requirements import require_tools

from kernel_harness import HarnessContext, f32_type, i8_type, one_op_graph
from tfc.backends.cortex_m7 import kernels
from tfc.errors import UnsupportedOpError
from tfc.ir.core import Builder, Graph
from tfc.ir.types import TensorType

M7_FLAGS = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", "-std=c99",
            "-Wall", "-Wextra", "-Werror", "-O3"]
SOURCES = sorted(kernels.RUNTIME_DIR.glob("*.c"))


def _compile(cc: str, flags: list[str], out_dir: Path, namespace: str = "") -> list[Path]:
    include = out_dir / "include"
    include.mkdir(parents=True, exist_ok=True)
    (include / "tfc_namespace.h").write_text(namespace or "/* no prefix */\n")
    objects = []
    for src in SOURCES:
        obj = out_dir / f"{src.stem}.o"
        cmd = [cc, *flags, f"-I{kernels.RUNTIME_DIR}", f"-I{include}", "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-3000:]}"
        objects.append(obj)
    return objects


def _need(tool: str) -> None:
    require_tools(tool)


@pytest.fixture(scope="module")
def m7_objects(tmp_path_factory) -> list[Path]:
    _need("arm-none-eabi-gcc")
    return _compile("arm-none-eabi-gcc", M7_FLAGS + ["-ffunction-sections"],
                    tmp_path_factory.mktemp("m7"))


def test_runtime_builds_for_cortex_m7_without_warnings(m7_objects):
    assert [p.stem for p in m7_objects] == [p.stem for p in SOURCES]


def test_int8_kernels_use_no_floating_point(m7_objects):
    """No VFP instruction and no float/libm helper call in any tfc_*_s8 function."""
    _need("arm-none-eabi-objdump")
    checked = 0
    for obj in m7_objects:
        listing = subprocess.run(["arm-none-eabi-objdump", "-dr", str(obj)], capture_output=True,
                                 text=True, check=True).stdout
        for name, body in re.findall(r"^[0-9a-f]+ <(tfc_\w+_s8)>:\n(.*?)(?=\n\n|\Z)", listing,
                                     re.S | re.M):
            if "f32" in name:  # the float <-> int8 boundary converters are float by nature
                continue
            checked += 1
            # The compiler may spill integers to VFP registers (vpush/vldr/vmov): that is no
            # float arithmetic. Any .f32/.f64 operation other than a move, or a conversion, is.
            vfp = [m for m in re.findall(r"\t(v[a-z]+\.[a-z0-9.]+)\s", body)
                   if re.search(r"f32|f64", m) and not m.startswith("vmov")]
            assert not vfp, f"{name} uses floating point instructions {sorted(set(vfp))}"
            calls = re.findall(r"R_ARM_THM_(?:CALL|JUMP24)\s+(\S+)", body)
            floaty = [c for c in calls if re.search(r"f$|_f|d2|f2|sqrt|exp", c)]
            assert not floaty, f"{name} calls float helpers {floaty}"
    assert checked >= 12, f"found only {checked} int8 kernels in the listings"


def test_runtime_symbols_are_exactly_the_exported_functions(tmp_path):
    _need("nm")
    objects = _compile("gcc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"], tmp_path)
    exported = set()
    for obj in objects:
        out = subprocess.run(["nm", "-g", "--defined-only", str(obj)], capture_output=True,
                             text=True, check=True).stdout
        exported.update(line.split()[-1] for line in out.splitlines() if line.strip())
    assert set(kernels.runtime_symbols()) == exported
    assert {"tfc_conv2d_s8", "tfc_softmax_s8", "tfc_gather"} <= exported


def test_two_prefixes_link_into_one_program(tmp_path):
    """Each model's namespace header renames every runtime symbol, so two copies coexist."""
    objects = []
    for prefix in ("kws", "vww"):
        defines = "".join(f"#define {s} {prefix}_{s[len('tfc_'):]}\n" for s in kernels.runtime_symbols())
        objects += _compile("gcc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"],
                            tmp_path / prefix, defines)
    main = tmp_path / "main.c"
    main.write_text("#include <stdint.h>\n"
                    "void kws_copy(void *, const void *, int32_t);\n"
                    "void vww_copy(void *, const void *, int32_t);\n"
                    "int main(void) { char a[4] = \"abc\", b[4], c[4];\n"
                    "  kws_copy(b, a, 4); vww_copy(c, b, 4); return c[1] == 'b' ? 0 : 1; }\n")
    exe = tmp_path / "both"
    proc = subprocess.run(["gcc", str(main), *map(str, objects), "-o", str(exe), "-lm"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert subprocess.run([str(exe)]).returncode == 0


def _lower(graph: Graph):
    ctx = HarnessContext("t")
    return [call for op in graph.ops for call in kernels.lower_op(op, ctx)]


@pytest.mark.parametrize("build, types, culprit", [
    (lambda b, x: b.op("relu", [x]), [i8_type((2, 3))], "no Cortex-M7 kernel for i8"),
    (lambda b, x: b.op("clip", [x], min=0, max=9), [TensorType((4,), "i16")], "i16"),
    (lambda b, x: b.op("softmax", [x], axis=0), [f32_type((3, 4))], "only axis -1"),
    (lambda b, x: b.op("maxpool2d", [x], kernel=[2, 2], layout="nchw"), [f32_type((1, 2, 4, 4))],
     "layout-nhwc"),
    (lambda b, x: b.op("batchnorm", [x] + [b.const(np.ones(2, np.float32), f"p{i}") for i in range(4)]),
     [f32_type((1, 2, 3, 3))], "has no Cortex-M7 kernel"),
])
def test_unsupported_ops_raise_one_line_errors(build, types, culprit):
    g = one_op_graph("bad", types, build)
    with pytest.raises(UnsupportedOpError) as err:
        _lower(g)
    message = str(err.value)
    assert "\n" not in message and culprit in message and "%" in message


def test_kernel_call_renders_a_c_statement():
    call = kernels.KernelCall("tfc_copy", ("dst", "src", "16"))
    assert call.render() == "tfc_copy(dst, src, 16);"


def test_reshape_is_a_view_inside_a_graph_but_a_copy_when_returned():
    g = Graph("views")
    x = g.add_input(f32_type((2, 6)), "x")
    b = Builder(g)
    flat = b.op("reshape", [x], shape=[12])
    y = b.op("relu", [flat])
    out = b.op("reshape", [y], shape=[3, 4])
    g.outputs = [out]
    assert kernels.is_view(flat.producer)
    assert not kernels.is_view(out.producer)
    assert [c.fn for c in _lower(g)] == ["tfc_copy", "tfc_clip_f32", "tfc_copy"]


def test_literals():
    assert kernels.c_float(1.0) == "1.0f"
    assert kernels.c_float(float("-inf")) == "-INFINITY"
    assert np.float32(float(kernels.c_float(0.1)[:-1])) == np.float32(0.1)
    assert kernels.c_ints([1, -2]) == "(const int32_t[]){1, -2}"
