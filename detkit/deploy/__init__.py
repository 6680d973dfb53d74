"""A model that leaves detkit: ONNX / TorchScript export (``export``) and the torch-free inference every
backend shares (``runtime``: letterbox, NMS, thread count, onnxruntime)."""
