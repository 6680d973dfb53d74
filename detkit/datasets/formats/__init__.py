"""One module per on-disk format (COCO json, YOLO, Pascal VOC, course text), the layouts users bring, one
writer."""
