"""Baton's built-in industry plugins, written against ``sdk`` only."""
