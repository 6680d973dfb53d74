"""Dataset operations behind ``detkit coco split / merge / filter / sample / draw``.

Each module returns data (a :class:`~detkit.datasets.ops.source.Part` per output, counts, tables) and the
writers in :mod:`detkit.datasets.formats.write` put the parts on disk in COCO, YOLO or VOC form. A COCO json
source keeps each record's original bytes (:class:`~detkit.datasets.ops.source.RawCoco`), so a subset is
written losslessly — segmentations and extra fields included — without re-encoding the file.
"""
