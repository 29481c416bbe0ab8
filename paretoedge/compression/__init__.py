"""Compression transforms and their composition."""
