"""trainlint: a LibCST linter for PyTorch training-loop code."""

__version__ = "0.1.0"
