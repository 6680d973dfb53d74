"""Scoring a detector's predictions against ground truth (``detkit coco eval``; ``detkit.evaluate``).

Modules in dependency order: predictions (read and check), engine (COCOeval by hotcoco or pycocotools),
analysis (per-class, sizes, slices, curves, anchor coverage), confusion, tide, result (``evaluate``), plots.
"""

from detkit.evaluation.predictions import Predictions, load_predictions
from detkit.evaluation.result import EvalConfig, EvalResult, evaluate, load_and_evaluate

__all__ = ["EvalConfig", "EvalResult", "Predictions", "evaluate", "load_and_evaluate", "load_predictions"]
