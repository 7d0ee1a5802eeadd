"""transformers.Trainer subclasses, callbacks and pure loss functions."""
