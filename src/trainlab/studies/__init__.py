"""Studies: hyper-parameter search (`tune`) and technique comparisons (`ablate`)."""
