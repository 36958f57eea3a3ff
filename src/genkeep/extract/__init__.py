"""Durable, resumable extraction: ontology-guided knowledge-graph extraction from long text."""
