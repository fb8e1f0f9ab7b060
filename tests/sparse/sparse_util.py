"""The sparse tests' layer builders live in tfc.sparse.layers (bench/ uses them too)."""

from tfc.sparse.layers import (Layer, assert_bit_exact, compile_layers, conv_layer,
                               depthwise_layer, layers_graph, linear_layer, random_inputs,
                               random_weights)

__all__ = ["Layer", "assert_bit_exact", "compile_layers", "conv_layer", "depthwise_layer",
           "layers_graph", "linear_layer", "random_inputs", "random_weights"]
