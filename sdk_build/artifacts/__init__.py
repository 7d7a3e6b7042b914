"""Artifacts: the contract every consumer reads. The manifest, the catalog and its schema, file names, and what a bundle costs on a device."""
