"""detkit: a command-line toolkit for object-detection datasets, anchor boxes and training."""

__version__ = "0.1.0"
