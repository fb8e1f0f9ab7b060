"""Passes that only make sense for the Cortex-M7 backend (registered in `tfc.passes.PASSES`)."""
