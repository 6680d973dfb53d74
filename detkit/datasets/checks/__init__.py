"""Validation, fixing, finding codes and lenient loading."""
