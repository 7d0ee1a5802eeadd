"""Metrics for evaluation and cherry-picks."""
