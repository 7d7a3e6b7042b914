"""System: the machine a build runs on. Atomic writes, disk and memory checks, progress output, leftovers of interrupted runs, reproducible-build settings."""
