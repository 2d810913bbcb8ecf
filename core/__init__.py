"""Baton: key-account ownership as a GraphQL service."""

__version__ = "0.1.0"
