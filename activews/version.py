"""The version of activews (one source: the package metadata is built from it)."""

__version__ = "0.1.0"
