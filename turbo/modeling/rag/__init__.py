"""RAG: the question/passage encoder, the retriever over a faiss index, the RAG-Sequence model."""
