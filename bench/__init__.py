"""Benchmarks against what users would pick instead (llama.cpp, nginx, litert-torch's own route).

Scripts here print tables and write JSON; they are never run as tests. Every comparison runs both sides in the same
invocation, reports medians over repeated runs and the ratio ours/peer.
"""
