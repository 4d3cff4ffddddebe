"""Training of NanoDet-Plus-style detectors: losses, label assignment, the training loop, and
the training job (`job.train(recipe, TrainOptions)`) that `ednas train` calls."""
