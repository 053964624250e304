"""Side-by-side benchmarks: one run, one machine, same inputs, ratios printed as JSON."""
