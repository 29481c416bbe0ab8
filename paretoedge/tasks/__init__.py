"""Tasks: a model paired with labelled data."""
