"""The label of a token that carries no loss (cross-entropy's ignore_index, as in transformers), for every
layer: data writes it, modeling and trainers skip it."""

IGNORE_INDEX = -100
