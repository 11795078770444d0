"""Trace-driven simulation: the same scheduling core, driven by a virtual clock."""
