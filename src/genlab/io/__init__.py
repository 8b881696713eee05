"""Checkpoints, run directories and media files."""
