"""`detkit coco ...` commands (thin: parse, call one function, print)."""
