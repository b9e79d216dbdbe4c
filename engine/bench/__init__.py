"""The evaluation harness: ``equigen bench quality`` (generation against the baselines on held-out
classes) and ``equigen bench speed`` (timings), and the markdown report."""
