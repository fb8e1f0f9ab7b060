"""The generated C under stricter builds: ASan/UBSan, arm-none-eabi-gcc -Werror, and two models
with different prefixes linked into one program."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7.build import make
from tfc.ir import interp

from graphs import float_convnet, int8_convnet

needs_m7 = pytest.mark.needs("arm-none-eabi-gcc")


def _run_harness(exe, inputs: list[np.ndarray], out_specs) -> list[np.ndarray]:
    proc = subprocess.run([str(exe)], input=b"".join(a.tobytes() for a in inputs),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"runtime error" not in proc.stderr, proc.stderr.decode()  # UBSan reports
    outs, pos = [], 0
    for shape, dtype in out_specs:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        outs.append(np.frombuffer(proc.stdout[pos:pos + n], dtype=dtype).reshape(shape))
        pos += n
    assert pos == len(proc.stdout)
    return outs


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_asan_ubsan_build_runs_clean(outdir_for, precision):
    g = int8_convnet() if precision == "int8" else float_convnet()
    out = outdir_for(tfc.compile(g, precision=precision, pipeline="memory-plan", name="san"))
    make(out, "host-asan")
    rng = np.random.default_rng(11)
    spec = g.inputs[0].type
    x = (rng.integers(-128, 128, size=spec.shape).astype(np.int8) if precision == "int8"
         else rng.normal(size=spec.shape).astype(np.float32))
    got = _run_harness(out / "san_asan", [x], [(v.type.shape, v.type.np_dtype) for v in g.outputs])
    want = interp.run(g, [x])
    if precision == "int8":
        np.testing.assert_array_equal(got[0], want[0])
    else:
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@needs_m7
def test_m7_build_with_werror(outdir_for):
    out = outdir_for(tfc.compile(int8_convnet(), pipeline="memory-plan", name="m7net"))
    make(out, "m7")
    lib = out / "build" / "m7" / "libm7net.a"
    assert lib.is_file()
    symbols = subprocess.run(["arm-none-eabi-nm", str(lib)], capture_output=True, text=True).stdout
    assert " T m7net_run" in symbols and " T m7net_conv2d_s8" in symbols  # runtime renamed
    assert " tfc_conv2d_s8" not in symbols


MAIN_C = r"""
#include <stdio.h>
#include "a/model.h"
#include "b/model.h"

int main(void)
{
    static int8_t xa[NET_A_INPUT_SIZE];
    static float xb[NET_B_INPUT_SIZE];
    static int8_t ya[NET_A_OUTPUT_SIZE];
    static float yb[NET_B_OUTPUT_SIZE];
    /* model b is built with NET_B_NO_STATIC_ARENA: the caller owns its arena */
    static uint8_t arena_b[NET_B_ARENA_SIZE] __attribute__((aligned(16)));
    for (int i = 0; i < NET_A_INPUT_SIZE; i++) xa[i] = (int8_t)((i * 37) % 256 - 128);
    for (int i = 0; i < NET_B_INPUT_SIZE; i++) xb[i] = (float)((i * 13) % 17) / 8.0f - 1.0f;
    if (net_a_run(xa, ya) != 0 || net_b_run_with_arena(xb, yb, arena_b) != 0) return 1;
    if (net_b_run_with_arena(xb, yb, arena_b + 1) != -1) return 2; /* misaligned arena refused */
    fwrite(ya, 1, sizeof ya, stdout);
    fwrite(yb, 1, sizeof yb, stdout);
    return 0;
}
"""


@pytest.mark.slow
def test_two_prefixes_link_into_one_program(tmp_path):
    ga, gb = int8_convnet(), float_convnet()
    tfc.compile(ga, pipeline="memory-plan", name="net_a").write(tmp_path / "a")
    tfc.compile(gb, precision="float32", pipeline="memory-plan", name="net_b").write(tmp_path / "b")
    (tmp_path / "main.c").write_text(MAIN_C)
    objects = []
    for sub in ("a", "b"):
        for src in sorted((tmp_path / sub).glob("*.c")):
            if src.name == "harness.c":
                continue
            obj = tmp_path / f"{sub}_{src.stem}.o"
            defines = ["-DNET_B_NO_STATIC_ARENA"] if sub == "b" else []
            subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", *defines, "-c",
                            str(src), "-o", str(obj)], check=True)
            objects.append(str(obj))
    nm = subprocess.run(["nm", *objects], capture_output=True, text=True).stdout
    assert "net_a_arena" in nm and "net_b_arena" not in nm
    exe = tmp_path / "both"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(tmp_path / "main.c"), *objects, "-lm"], check=True, cwd=tmp_path)
    xa = ((np.arange(ga.inputs[0].type.numel) * 37) % 256 - 128).astype(np.int8)
    xb = (((np.arange(gb.inputs[0].type.numel) * 13) % 17) / np.float32(8) - 1).astype(np.float32)
    ya, yb = _run_harness(exe, [], [((1, 10), np.int8), ((1, 4), np.float32)])
    np.testing.assert_array_equal(ya, interp.run(ga, [xa.reshape(ga.inputs[0].type.shape)])[0])
    np.testing.assert_allclose(yb, interp.run(gb, [xb.reshape(gb.inputs[0].type.shape)])[0],
                               rtol=1e-5, atol=1e-5)
