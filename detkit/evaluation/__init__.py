"""Scoring a detector's predictions against ground truth (``detkit coco eval``; ``detkit.evaluate``).

Modules in dependency order: predictions (read and check), engine (COCOeval by hotcoco or pycocotools),
matching (COCO's greedy matching, crowd-aware IoU), analysis (per-class, sizes, slices, curves,
calibration, anchor coverage), confusion, per_image (errors per image, the worst drawn), tide, result
(``evaluate``), plots; suspects (``coco suspects``: label-error suspects) and compare (``coco compare``:
the paired bootstrap) on top.
"""
