"""Retrieval-augmented answers with citations: documents (PDF, Markdown, HTML, text) chunked
into the semantic-search index, hybrid retrieval, generation through any OpenAI-compatible
endpoint, and an evaluation of retrieval, faithfulness and citations."""
