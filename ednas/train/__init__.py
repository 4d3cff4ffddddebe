"""Training of NanoDet-Plus-style detectors: losses, label assignment, the training loop."""
