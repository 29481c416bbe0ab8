"""Search controller, study configuration, backends and Pareto computation."""
