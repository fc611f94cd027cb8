"""Training a checkpoint: configs, recipes, objectives, the epoch loop, saving, safe checkpoints."""
