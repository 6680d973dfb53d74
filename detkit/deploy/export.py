"""What the detector's and the classifier's exports share: the writer (trace, ONNX opset 17 checked with
``onnx.checker`` or TorchScript, metadata inside the file, written atomically, run once against PyTorch), and
the torch side of running a model (a checkpoint's module or a TorchScript file) behind
:class:`detkit.deploy.runtime.Exported`, with the trainers' thread policy.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.deploy.runtime import METADATA_KEY, ONNX_HINT, check_task, read_metadata
from detkit.errors import DetkitError
from detkit.io import atomic_write
from detkit.train.threads import apply_thread_policy

OPSET = 17
SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}
PARITY_TOL = 1e-4  # fp32 CPU: largest |ONNX - PyTorch| accepted on the check after export


def as_tensor(a: np.ndarray) -> torch.Tensor:
    """``a`` as a tensor sharing its memory when it may: a read-only array (``np.asarray`` of a PIL image, a
    memory map) is copied first, as torch warns on a buffer it cannot write to."""
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def torch_runner(module: nn.Module, dev: torch.device):
    def fn(x: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = module(as_tensor(x).to(dev))
        outs = (out,) if isinstance(out, torch.Tensor) else out  # a classifier has one output
        return [o.float().cpu().numpy() for o in outs]

    return fn


def torch_threads(threads: int | None, dev: torch.device) -> int:
    """The trainers' thread policy for inference (no data workers), applied to torch."""

    if dev.type != "cpu" and threads is None:
        return torch.get_num_threads()
    return apply_thread_policy(threads, 0)["threads"]


def load_torchscript(path: Path, dev: torch.device | str = "cpu", task: str = "detect"):
    """(module, metadata) of a TorchScript file written by a detkit export; one line when it is not."""
    if not path.is_file():
        raise DetkitError(f"{path}: no such model file")
    extra = {f"{METADATA_KEY}.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
            module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
    except Exception as e:  # noqa: BLE001 - torch.jit raises RuntimeError / ValueError / zip errors alike
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DetkitError(f"{path}: not a readable TorchScript model ({msg[:200]})") from None
    text = extra[f"{METADATA_KEY}.json"]
    meta = read_metadata(path, {METADATA_KEY: text} if text else {})
    check_task(path, meta, task)
    return module.eval(), meta


def write_export(
    module: nn.Module,
    example: torch.Tensor,
    meta: dict[str, Any],
    out: str | Path,
    fmt: str,
    dynamic: bool,
    outputs: tuple[str, ...],
) -> dict[str, Any]:
    """Trace ``module`` on ``example``, write it with ``meta`` to ``out`` atomically, and check it (the
    detector's and the classifier's export share this)."""

    out = Path(out)
    if out.is_dir():
        example_name = out / ("model" + SUFFIXES[fmt])
        raise DetkitError(f"{out}: is a folder; give the file to write (e.g. {example_name})")
    # the check input: the traced batch, and another batch size when the export takes any
    check = torch.cat([example, example.flip(0)]) if dynamic else example
    with torch.inference_mode():
        want = [o.numpy() for o in module(check)]
    text = json.dumps(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: not the user's business
        if fmt == "torchscript":
            buf = io.BytesIO()
            torch.jit.save(
                torch.jit.trace(module, example, check_trace=False),
                buf,
                _extra_files={f"{METADATA_KEY}.json": text},
            )
            data = buf.getvalue()
            with torch.inference_mode():
                got = [o.numpy() for o in torch.jit.load(io.BytesIO(data))(check)]
        else:
            data = _onnx_bytes(module, example, dynamic, outputs, text)
            got = _onnx_run(data, check.numpy())
    diff = None if got is None else max(float(np.abs(a - b).max()) for a, b in zip(want, got))
    if diff is not None and diff > PARITY_TOL:
        raise DetkitError(
            f"{out}: the exported model differs from PyTorch by {diff:.3g} (> {PARITY_TOL}); not written"
        )
    with atomic_write(out, "wb") as f:
        f.write(data)
    return {
        "out": str(out),
        "format": fmt,
        "img_size": meta["img_size"],
        "batch": "dynamic" if dynamic else meta["batch"],
        "bytes": out.stat().st_size,
        "max_abs_diff": diff,
    }


def _onnx_bytes(module, example, dynamic: bool, outputs: tuple[str, ...], text: str) -> bytes:
    try:
        import onnx
    except ImportError:
        raise DetkitError(f"exporting to ONNX needs the onnx package: {ONNX_HINT}") from None
    buf = io.BytesIO()
    axes = {n: {0: "batch"} for n in ("images", *outputs)} if dynamic else None
    torch.onnx.export(
        module,
        (example,),
        buf,
        dynamo=False,  # the TorchScript-based exporter: the dynamo one needs onnxscript
        opset_version=OPSET,
        input_names=["images"],
        output_names=list(outputs),
        dynamic_axes=axes,
        do_constant_folding=True,
    )
    proto = onnx.load_from_string(buf.getvalue())
    prop = proto.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, text
    proto.producer_name = "detkit"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _onnx_run(data: bytes, x: np.ndarray) -> list[np.ndarray] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.log_severity_level = torch.get_num_threads(), 3
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": x})
