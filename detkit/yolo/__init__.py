"""YOLOv2-style detection: model, targets, loss, decoding (``model``, ``targets``, ``loss``, ``decode``),
data pipeline (``data``), training/evaluation loops (``engine``), runs and checkpoints (``train``),
eval/predict from a checkpoint (``predict``) and the ``detkit yolo`` commands (``cli``).
"""
