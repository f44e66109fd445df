"""Frozen API contracts: each version's OpenAPI document, kept and compared."""
