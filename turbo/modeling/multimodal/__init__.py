"""Multimodal parts (readers, encoders, projectors), each in a plain dict registry, and the model that
splices projected modality embeddings into a language model's input embeddings."""
