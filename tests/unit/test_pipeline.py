"""The pass manager: pipeline text, options, failure context, verification and instruments."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest

from tfc.errors import PassError, VerifyError
from tfc.ir.core import Builder, Graph, structurally_equal
from tfc.ir.parser import parse_file
from tfc.ir.types import TensorType
from tfc.passes import PASSES, _LOADED
from tfc.pipeline import (DumpIRDir, Pass, PassManager, PrintIR, TimePasses, format_pipeline,
                          parse_pipeline, register_pass)


def small_graph() -> Graph:
    """x -> reshape (identity) -> relu -> out: canonicalize changes it, fuse-activation does not."""
    g = Graph("small")
    x = g.add_input(TensorType((1, 4), "f32"), "x")
    b = Builder(g)
    r = b.op("reshape", [x], shape=[1, 4])
    g.outputs = [b.op("relu", [r])]
    return g


@dataclass
class _OptionsPass(Pass):
    """Has one option of every supported kind."""

    name = "test-options"
    min_sparsity: float = 0.5
    block: int = 4
    enabled: bool = True
    mode: str = "auto"

    def run(self, graph):
        return False


@dataclass
class _BreakGraph(Pass):
    """Makes the graph invalid (a result shape the op cannot produce)."""

    name = "test-break"

    def run(self, graph):
        op = graph.ops[-1]
        op.results[0].type = TensorType((9, 9), "f32")
        return True


@dataclass
class _Crash(Pass):
    name = "test-crash"

    def run(self, graph):
        return {}["missing"]


@dataclass
class _NeedsNhwc(Pass):
    name = "test-requires"

    def requires(self, graph):
        raise PassError("needs an nhwc graph; run layout-nhwc first")


@pytest.fixture(autouse=True)
def test_passes():
    classes = (_OptionsPass, _BreakGraph, _Crash, _NeedsNhwc)
    for cls in classes:
        register_pass(cls)
    yield
    for cls in classes:
        PASSES.pop(cls.name, None)
        _LOADED.pop(cls.name, None)


def test_options_are_parsed_by_field_type():
    [p] = parse_pipeline("test-options{min-sparsity=0.7, block=2,enabled=false,mode=dense}")
    assert p == _OptionsPass(min_sparsity=0.7, block=2, enabled=False, mode="dense")
    assert str(p) == "test-options{min-sparsity=0.7,block=2,enabled=false,mode=dense}"
    assert format_pipeline(parse_pipeline(str(p))) == str(p)
    assert str(parse_pipeline("test-options")[0]) == "test-options"


@pytest.mark.parametrize("text, message", [
    ("test-options{blok=2}", "pass 'test-options' has no option 'blok'; options: min-sparsity, block"),
    ("test-options{block=two}", "option 'block' expects int, got 'two'"),
    ("test-options{enabled=maybe}", "option 'enabled' expects bool"),
    ("test-options{block}", "must be key=value"),
    ("test-options{block=2", "missing '}'"),
    ("canonicalize,,fuse-activation", "empty pass name"),
    ("fuse-activaton", "unknown pass 'fuse-activaton'; did you mean 'fuse-activation'?"),
])
def test_bad_pipelines_say_what_is_wrong(text, message):
    with pytest.raises(PassError) as info:
        parse_pipeline(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_pipeline_accepts_names_and_sequences():
    names = [p.name for p in parse_pipeline(("canonicalize", "fuse-activation{}"))]
    assert names == ["canonicalize", "fuse-activation"]
    assert parse_pipeline("") == []
    assert [p.name for p in PassManager("canonicalize,canonicalize").passes] == ["canonicalize"] * 2


def test_manager_runs_in_order_and_records_changes():
    g = small_graph()
    manager = PassManager(["canonicalize", "fuse-activation"], roundtrip_each=True)
    assert manager.run(g) is g
    assert manager.changed == [True, False]
    assert [op.name for op in g.ops] == ["relu"]


def test_failure_names_the_pass_and_what_ran_before():
    with pytest.raises(PassError) as info:
        PassManager("canonicalize,fuse-activation,test-crash").run(small_graph())
    assert str(info.value) == ("pass 'test-crash' failed after [canonicalize, fuse-activation]: "
                               "KeyError: 'missing'")
    assert isinstance(info.value.__cause__, KeyError)


def test_verification_failure_is_blamed_on_the_pass():
    with pytest.raises(PassError, match=r"^pass 'test-break' failed after \[canonicalize\]: .*result shape"):
        PassManager("canonicalize,test-break").run(small_graph())
    g = small_graph()
    PassManager("test-break", verify_each=False).run(g)  # the caller opted out


def test_requires_is_checked_before_run():
    with pytest.raises(PassError, match=r"^pass 'test-requires' failed after \[\]: needs an nhwc graph"):
        PassManager("test-requires").run(small_graph())


def test_an_invalid_input_is_not_blamed_on_a_pass():
    g = small_graph()
    g.ops[0].attrs["shape"] = [2, 2]
    with pytest.raises(VerifyError):
        PassManager("canonicalize").run(g)


def test_print_ir_instrument_headers_and_filters():
    out = io.StringIO()
    manager = PassManager("canonicalize,fuse-activation",
                          [PrintIR(before={"canonicalize"}, after_change=True, stream=out)])
    manager.run(small_graph())
    text = out.getvalue()
    assert text.count("// -----// IR Dump Before canonicalize //----- //") == 1
    assert text.count("// -----// IR Dump After canonicalize //----- //") == 1
    assert "After fuse-activation" not in text  # it changed nothing
    before, after = text.split("// -----// IR Dump After canonicalize //----- //")
    assert "reshape" in before and "reshape" not in after

    out = io.StringIO()
    PassManager("canonicalize,fuse-activation", [PrintIR(after="*", stream=out)]).run(small_graph())
    assert out.getvalue().count("IR Dump After") == 2


def test_time_passes_prints_a_table():
    out = io.StringIO()
    PassManager("canonicalize,fuse-activation", [TimePasses(stream=out)]).run(small_graph())
    text = out.getvalue()
    assert "Total Execution Time" in text
    assert "canonicalize" in text and "fuse-activation" in text


def test_dump_dir_files_reload_and_replay(tmp_path):
    (tmp_path / "07_stale.tir").write_text("stale")
    g = small_graph()
    rng = np.random.default_rng(0)
    w = Builder(g, insert_before=g.ops[0]).const(rng.standard_normal((4, 4)).astype(np.float32), "w")
    lin = Builder(g).op("linear", [g.outputs[0], w], name_hint="fc")
    g.outputs = [Builder(g).op("relu", [lin])]
    PassManager("canonicalize,fuse-activation", [DumpIRDir(str(tmp_path))]).run(g)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["00_input.tir", "01_canonicalize.tir", "02_fuse-activation.tir"]
    dumped = parse_file(tmp_path / "02_fuse-activation.tir")
    assert structurally_equal(dumped, g)  # full weights: a bit-exact reload
    replay = parse_file(tmp_path / "01_canonicalize.tir")
    PassManager("fuse-activation").run(replay)
    assert structurally_equal(replay, g)


def test_roundtrip_check_catches_state_the_text_form_loses():
    @dataclass
    class _NumpyAttr(Pass):
        """Stores a numpy integer: it prints as 4, but reads back as a Python int."""

        name = "test-numpy-attr"

        def run(self, graph):
            graph.ops[0].attrs["shape"] = [np.int64(1), np.int64(4)]
            return True

    PassManager([_NumpyAttr()], verify_each=False).run(small_graph())  # unchecked: unnoticed
    with pytest.raises(PassError, match=r"^pass 'test-numpy-attr' failed after \[\]: .*round-trip"):
        PassManager([_NumpyAttr()], verify_each=False, roundtrip_each=True).run(small_graph())
