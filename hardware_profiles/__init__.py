"""Device profiles, lowering through TVM and the latency/memory model."""
