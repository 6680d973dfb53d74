"""Plumbing both trainers share: the harness (run folder, resume), options, device and RNG, threads,
provenance."""
