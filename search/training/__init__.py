"""Training one trial: the model built from plain values, the compiled training loop that
trials share, and per-epoch checkpoints."""
