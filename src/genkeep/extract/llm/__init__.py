"""The LLM extractor: the extractor and its cache, the answer it asks for, and grounding."""
