"""What to compute: the paper's experiments and presets as data, planned into cells with a cost."""
