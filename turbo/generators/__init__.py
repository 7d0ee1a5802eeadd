"""Batch generation: transformers (and, per model entry, other engines)."""
