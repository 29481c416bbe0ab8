"""Objectives a study optimizes: accuracy, latency, energy, size, memory."""
