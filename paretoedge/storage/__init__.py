"""SQL storage of studies, candidates and per-device metrics."""
