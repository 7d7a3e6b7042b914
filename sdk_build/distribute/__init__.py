"""Distribute: getting bundles to users. Catalog sources, `sdk-build pull` and its hardened downloads."""
