"""Command line: ``gpulease`` (Typer + Rich)."""
