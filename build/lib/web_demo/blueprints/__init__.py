"""Blueprints: `pages` (HTML + vendored runtime), `files` (bundle downloads), `api` (JSON)."""
