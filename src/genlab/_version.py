"""The genlab version, in one place (read by the package metadata and the run manifest)."""

__version__ = "0.1.0"
