"""Bundled study configurations, read with importlib.resources."""
