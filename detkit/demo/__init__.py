"""``detkit demo``: every detkit tool run on generated data."""
