"""Measured flash (`build.measure_flash`): a --gc-sections link of the model's public C API.

A model pays for the runtime kernels it reaches, not for every kernel in the runtime; the weights are
split off exactly; the figure agrees with the emulator's full image (which adds only the harness,
the start-up code and the vector table).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import tfc
from tfc.backends.cortex_m7 import build, m7_build
from tfc.errors import BuildError
from tfc.ir.core import Builder, Graph

from graphs import float_convnet, float_multi_io, int8_conv, int8_linear, qtype

needs_arm = pytest.mark.needs("arm-none-eabi-gcc")
# The emulator image adds the vector table (64 B), reset handler, halt/fault stubs, the harness's
# main() and one marker call per layer (TFC_PROFILE); well under this on a small model.
HARNESS_GAP_BYTES = 4096


def int8_conv_linear(seed: int = 0) -> Graph:
    """conv(relu) -> reshape -> linear, int8: no depthwise, sparse, layernorm or softmax kernel."""
    rng = np.random.default_rng(seed)
    g = Graph("convlin")
    x = g.add_input(qtype((1, 6, 6, 3), 0.03, -7), "input")
    b = Builder(g)
    c1 = int8_conv(b, x, 8, 3, rng, relu=True, name="conv1")
    flat = b.op("reshape", [c1], shape=[1, 6 * 6 * 8], name_hint="flat",
                result_type=c1.type.with_shape((1, 6 * 6 * 8)))
    g.outputs = [int8_linear(b, flat, 10, rng, name="logits")]
    return g


@pytest.fixture(scope="module")
def convlin():
    return tfc.compile(int8_conv_linear(), pipeline="memory-plan", name="convlin")


def _unlinked_code_bytes(sources: dict[str, str], tmp_path) -> int:
    """The old measure: text + data of every device unit but the weights, compiled and not linked."""
    flags = build.makefile_m7_flags(sources["Makefile"])
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    units = sorted(n for n in sources if n.endswith(".c") and n not in ("weights.c", "harness.c"))
    for unit in units:
        subprocess.run([build.M7_CC, *flags, "-c", unit, "-o", unit[:-2] + ".o"], cwd=tmp_path, check=True)
    sizes = subprocess.run(["arm-none-eabi-size", *[u[:-2] + ".o" for u in units]], cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout
    return sum(int(f[0]) + int(f[1]) for f in (ln.split() for ln in sizes.splitlines()[1:]))


# -- without a toolchain -------------------------------------------------------------------------------

def test_makefile_flags_are_the_models_own(convlin):
    flags = build.makefile_m7_flags(convlin.sources["Makefile"])
    for flag in ("-mcpu=cortex-m7", "-O3", "-Werror", "-DTFC_INT8_ONLY", "-mgeneral-regs-only",
                 "-ffunction-sections", "-fdata-sections"):
        assert flag in flags
    float_flags = build.makefile_m7_flags(tfc.compile(float_convnet(), pipeline="memory-plan",
                                                      precision="float32").sources["Makefile"])
    assert "-mgeneral-regs-only" not in float_flags and "-mfloat-abi=hard" in float_flags


def test_makefile_flags_follow_assignment_order():
    text = "X := 1\nM7_CFLAGS := -Os \\\n\t-mthumb\nM7_CFLAGS += -DA\nM7_CFLAGS := -O1\nM7_CFLAGS += -DB\n"
    assert build.makefile_m7_flags(text) == ["-O1", "-DB", *build.M7_SECTION_FLAGS]
    with pytest.raises(BuildError, match="M7_CFLAGS"):
        build.makefile_m7_flags("all:\n\ttrue\n")


def test_weights_split_counts_only_kept_flash_sections():
    link_map = (
        "Discarded input sections\n\n"
        " .rodata.m_unused\n                0x00000000       0x40 weights.o\n\n"
        "Linker script and memory map\n\n"
        ".rodata         0x00001000      0x90\n"
        " .rodata        0x00001000       0x10 model.o\n"
        " .rodata.m_a_rather_long_weight_name\n"
        "                0x00001010       0x28 weights.o\n"
        "                0x00001010                m_a_rather_long_weight_name\n"
        " .rodata.m_b    0x00001038       0x58 weights.o\n"
        " .comment       0x00000000       0x26 weights.o\n"
        " .bss.m_c       0x00002000       0x08 weights.o\n")
    assert build._linked_bytes_from(link_map, "weights.o", [(0x1000, 0x1090)]) == 0x28 + 0x58


def test_missing_makefile_is_a_one_line_build_error(convlin):
    sources = {k: v for k, v in convlin.sources.items() if k != "Makefile"}
    with pytest.raises(BuildError, match="no Makefile") as err:
        build.measure_flash(sources)
    assert "\n" not in str(err.value)


# -- measured with arm-none-eabi-gcc -------------------------------------------------------------------

@needs_arm
def test_code_counts_only_the_kernels_the_model_links(convlin, tmp_path):
    sources = dict(convlin.sources)
    linked = build.measure_flash(sources)
    assert linked.roots == ("convlin_run", "convlin_run_multi", "convlin_run_multi_with_arena",
                            "convlin_run_with_arena")
    # The unlinked sum pays for the depthwise, sparse, layernorm and softmax kernels as well.
    assert 0 < linked.code_bytes < _unlinked_code_bytes(sources, tmp_path) // 2


@needs_arm
def test_an_unrelated_kernel_growing_does_not_change_the_code(convlin):
    sources = dict(convlin.sources)
    before = build.measure_code_bytes(sources)
    probe = ("\nint tfc_code_size_probe(const int8_t *x, int n);\n"
             "int tfc_code_size_probe(const int8_t *x, int n)\n{\n    int s = 0;\n"
             "    for (int i = 0; i < n; ++i) {\n        s += x[i] * (i + 3);\n    }\n    return s;\n}\n")
    sources["tfc_sparse.c"] += probe
    assert build.measure_code_bytes(sources) == before
    # The same function reachable from the public API does count: the measure can see it.
    sources["model.c"] += probe.replace("tfc_code_size_probe", "convlin_probe")
    sources["model.h"] += "int convlin_probe(const int8_t *x, int n);\n"
    assert build.measure_code_bytes(sources) > before


@needs_arm
def test_code_plus_weights_is_the_linked_image(convlin):
    m = build.measure_flash(convlin.sources)
    assert m.weights_bytes == convlin.report["weights_bytes"] > 0
    assert m.code_bytes + m.weights_bytes == m.image_bytes


@needs_arm
def test_report_flash_is_within_the_harness_of_the_emulator_image(outdir_for):
    art = tfc.compile(int8_conv_linear(), pipeline="memory-plan", name="convlin", measure_code=True)
    report = art.report
    assert report["flash_method"] == "measured"
    assert report["flash_bytes"] == report["code_bytes"] + report["weights_bytes"]
    elf = m7_build.read_elf(m7_build.build_model_elf(outdir_for(art), report))
    profile_flash, _ = elf.memory_usage()
    # The emulator's harness calls convlin_run_multi alone; with that one root the model part is
    # the same link, and the emulator image only adds the harness around it.
    harness_roots = build.measure_flash(art.sources, only=("convlin_run_multi",))
    assert harness_roots.image_bytes <= report["flash_bytes"]
    assert harness_roots.image_bytes <= profile_flash < harness_roots.image_bytes + HARNESS_GAP_BYTES
    # The emulator image holds the same weights, byte for byte.
    weight_symbols = [w for w in elf.symbols if w.startswith("convlin_w")]
    assert weight_symbols
    assert sum(elf.symbols[w][1] for w in weight_symbols) == report["weights_bytes"]
    with pytest.raises(BuildError, match="not part of the model's C API"):
        build.measure_flash(art.sources, only=("convlin_layer",))


@needs_arm
def test_float_and_multi_output_models_link(outdir_for):
    float_model = tfc.compile(float_convnet(), pipeline="memory-plan", precision="float32", name="fnet")
    assert build.measure_flash(float_model.sources).code_bytes > 0
    multi = tfc.compile(float_multi_io(), pipeline="memory-plan", precision="float32", name="multi")
    # No single-input wrapper: the roots are the two multi-IO entry points.
    assert build.measure_flash(multi.sources).roots == ("multi_run_multi", "multi_run_multi_with_arena")


@needs_arm
def test_measure_is_cached_by_content(convlin, monkeypatch):
    first = build.measure_flash(convlin.sources)

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached measure ran a tool")

    monkeypatch.setattr(build.subprocess, "run", no_subprocess)
    assert build.measure_flash(dict(convlin.sources)) is first
    changed = dict(convlin.sources, **{"model.c": convlin.sources["model.c"] + "\n"})
    with pytest.raises(AssertionError, match="ran a tool"):
        build.measure_flash(changed)


@needs_arm
def test_a_unit_that_does_not_compile_is_a_one_line_build_error(convlin):
    sources = dict(convlin.sources)
    sources["tfc_pool.c"] += "\nint broken(void) { return }\n"
    with pytest.raises(BuildError, match="tfc_pool.c") as err:
        build.measure_flash(sources)
    assert "\n" not in str(err.value)


@needs_arm
def test_a_link_error_names_the_missing_symbol(convlin):
    sources = dict(convlin.sources)
    sources["model.c"] += ("void tfc_missing_kernel(void);\nint convlin_extra(void);\n"
                           "int convlin_extra(void)\n{\n    tfc_missing_kernel();\n    return 0;\n}\n")
    sources["model.h"] += "int convlin_extra(void);\n"
    with pytest.raises(BuildError, match="tfc_missing_kernel") as err:
        build.measure_flash(sources)
    assert "\n" not in str(err.value)


@needs_arm
def test_the_estimate_is_within_a_factor_two_of_the_linked_code(convlin):
    measured = build.measure_code_bytes(convlin.sources)
    estimate = convlin.report["code_bytes_estimate"]
    assert measured / 2 < estimate < measured * 2
