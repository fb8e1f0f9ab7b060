"""Errors in IR text are reported at the right line and column, with a human message."""

from __future__ import annotations

import pytest

from tfc.errors import ParseError, TfcError, VerifyError
from tfc.ir import parse, parse_file

HEADER = "graph @g(%x: tensor<2xf32>) -> (tensor<2xf32>) {\n"


def check_error(program: str, line: int, col: int, message: str) -> ParseError:
    """Parsing `program` fails at line:col with an error containing `message`."""
    with pytest.raises(ParseError) as info:
        parse(program, "test.tir")
    err = info.value
    assert (err.line, err.col) == (line, col), f"error at {err.line}:{err.col}, not {line}:{col}: {err}"
    assert message in err.msg, f"{message!r} not in {err.msg!r}"
    assert str(err) == f"test.tir:{line}:{col}: error: {err.msg}"
    assert "\n" not in str(err)
    return err


def body(*lines: str) -> str:
    return HEADER + "".join(f"  {ln}\n" for ln in lines) + "}\n"


# -- syntax --------------------------------------------------------------------------------------

def test_missing_paren_names_what_was_expected():
    check_error(body("%y = relu(%x : tensor<2xf32>", "return %y"), 2, 16, "expected ')' or ',', got ':'")


def test_end_of_input():
    check_error(HEADER + "  return %x\n", 2, 12, "unexpected end of input; expected ',' or '}'")


def test_stray_character():
    check_error(body("%y = relu(%x) : tensor<2xf32> $", "return %y"), 2, 33, "unexpected character '$'")


def test_graph_name_needs_at_sign():
    check_error("graph g() -> () {\n  return\n}\n", 1, 7, "expected a graph name like @model, got 'g'")


def test_attribute_without_value():
    check_error(body("%y = clip(%x) {min = } : tensor<2xf32>", "return %y"), 2, 24, "got '}'")


# -- values --------------------------------------------------------------------------------------

def test_undefined_value():
    check_error(body("%y = relu(%z) : tensor<2xf32>", "return %y"), 2, 13, "use of undefined value %z")


def test_use_before_definition():
    check_error(body("%y = relu(%w) : tensor<2xf32>", "%w = relu(%x) : tensor<2xf32>", "return %y"),
                2, 13, "use of undefined value %w")


def test_redefinition_names_first_definition():
    check_error(body("%y = relu(%x) : tensor<2xf32>", "%y = relu(%x) : tensor<2xf32>", "return %y"),
                3, 3, "%y is already defined at 2:3")


def test_redefining_a_graph_input():
    check_error(body("%x = relu(%x) : tensor<2xf32>", "return %x"), 2, 3, "%x is already defined at 1:10")


def test_undefined_return_value():
    check_error(body("return %nope"), 2, 10, "use of undefined value %nope")


# -- types ---------------------------------------------------------------------------------------

def test_unknown_dtype():
    err = check_error(body("%y = relu(%x) : tensor<2xf16>", "return %y"), 2, 28, "unknown dtype 'f16'")
    assert "f32, i8, i16, i32, u8" in err.msg
    assert err.width == 3


def test_bad_dimension():
    check_error(body("%y = relu(%x) : tensor<2xqxf32>", "return %y"), 2, 28, "bad dimension 'q'")


def test_per_axis_quant_needs_one_scale_per_channel():
    check_error(body("%y = relu(%x) : tensor<2xf32, q<axis=0, [1.0]:[0]>>", "return %y"), 2, 40,
                "needs 2 scales and zero points, got 1 and 1")


def test_quant_axis_out_of_range():
    check_error(body("%y = relu(%x) : tensor<2xf32, q<axis=1, [1.0]:[0]>>", "return %y"), 2, 40,
                "axis 1 is out of range for rank 1")


def test_return_type_must_match_header():
    check_error(body("%y = relu(%x) : tensor<3xf32>", "return %y"), 3, 10,
                "%y has type tensor<3xf32> but the graph header declares tensor<2xf32>")


def test_return_count_must_match_header():
    check_error(body("return %x, %x"), 2, 10, "return has 2 value(s) but the graph header declares 1")


# -- ops and attributes --------------------------------------------------------------------------

def test_unknown_op_lists_known_ones():
    err = check_error(body("%y = frob(%x) : tensor<2xf32>", "return %y"), 2, 8, "unknown op 'frob'")
    assert "conv2d" in err.msg


def test_result_names_must_match_result_types():
    check_error(body("%a, %b = relu(%x) : tensor<2xf32>", "return %a"), 2, 12,
                "'relu' has 2 result name(s) but 1 result type(s)")


def test_duplicate_attribute():
    check_error(body("%y = clip(%x) {min = 1.0, min = 2.0} : tensor<2xf32>", "return %y"), 2, 29,
                "attribute 'min' is given twice")


def test_dense_only_as_const_value():
    check_error(body("%y = clip(%x) {min = dense<[1]>} : tensor<2xf32>", "return %y"), 2, 18,
                "only allowed as the 'value' of a const")


def test_dense_element_count():
    check_error(body("%c = const {value = dense<[1, 2]>} : tensor<3xf32>", "return %x"), 2, 30,
                "dense<...> has 2 element(s) but tensor<3xf32> needs 3")


def test_dense_integer_range():
    check_error(body("%c = const {value = dense<[1, 300]>} : tensor<2xi8>", "return %x"), 2, 33,
                "300 does not fit i8 [-128, 127]")


def test_dense_float_in_integer_constant():
    check_error(body("%c = const {value = dense<[1.5, 2]>} : tensor<2xi32>", "return %x"), 2, 30,
                "dense<...> of i32 holds integers, got 1.5")


# -- resources -----------------------------------------------------------------------------------

def test_unknown_resource():
    check_error(body("%c = const {value = dense_resource<w>} : tensor<20xi8>", "return %x"), 2, 38,
                "unknown resource 'w'")


def test_resource_size_must_match_type():
    text = body("%c = const {value = dense_resource<w>} : tensor<20xi8>", "return %x") + \
        'resources {\n  w = "0x0102"\n}\n'
    check_error(text, 2, 38, "resource 'w' has 2 bytes but tensor<20xi8> needs 20")


def test_duplicate_resource():
    text = body("return %x") + 'resources {\n  w = "0x01"\n  w = "0x02"\n}\n'
    check_error(text, 6, 3, "resource 'w' is defined twice")


# -- verifier errors carry the text position -----------------------------------------------------

def test_verifier_error_points_at_the_op():
    text = body("%y = relu(%x) : tensor<2xf32>", "%z = transpose(%y) {perm = [1, 0]} : tensor<2xf32>",
                "return %z")
    err = check_error(text, 3, 3, "'transpose' op %z")
    assert isinstance(err, VerifyError)
    assert err.render().splitlines()[1:] == ["  %z = transpose(%y) {perm = [1, 0]} : tensor<2xf32>",
                                             "  ^^"]


def test_verification_can_be_skipped():
    text = body("%z = transpose(%x) {perm = [1, 0]} : tensor<2xf32>", "return %z")
    graph = parse(text, verify=False)
    assert graph.ops[0].attrs["perm"] == [1, 0]
    assert graph.ops[0].loc == "<string>:2:3"


def test_render_draws_a_caret_under_the_culprit():
    err = check_error(body("%y = relu(%undefined) : tensor<2xf32>", "return %y"), 2, 13, "undefined")
    assert err.render().splitlines() == [
        "test.tir:2:13: error: use of undefined value %undefined",
        "  %y = relu(%undefined) : tensor<2xf32>",
        "            ^^^^^^^^^^",
    ]


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(TfcError, match="cannot read IR file"):
        parse_file(tmp_path / "absent.tir")
