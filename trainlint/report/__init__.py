"""Renderers: the same diagnostics in each output format."""
