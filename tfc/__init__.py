"""tfc: an ahead-of-time compiler for sparse INT8 transformer/CNN hybrids on microcontrollers."""
__version__ = "0.1.0"
