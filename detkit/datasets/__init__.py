"""The dataset layer every command stands on: the in-memory model, the formats read and written, checks and
operations."""
