"""Hostile and malformed inputs against every detkit data command: tracebacks and writes outside the output
folder.

Generates a set of malformed annotation inputs (COCO json, the course text format, Pascal VOC, YOLO folders;
the causes an audit of hostile inputs found and their neighbours), runs each data command on each in a fresh
sandbox as a separate process, and counts:

- tracebacks: a Python traceback, a MemoryError or a Python warning (``RuntimeWarning: overflow``) on stderr,
  an exit code other than 0 / 1 / 2, or a run past the timeout (60 s; each run's address space is capped at
  ``--mem-gb``, 2 GB);
- writes outside: any file created, changed or removed in the sandbox outside the command's output path
  (inputs included: an input must never be modified), or anything new beside the sandbox;
- multi-line errors: exit 2 with more than one line on stderr (a one-line error is the contract).

Goal: 0 / 0 / 0. Run from the project root:

    python bench/bad_inputs.py              # coco inspect/validate/--fix/classes/convert x3, anchors kmeans
    python bench/bad_inputs.py --train      # also `yolo train` for 1 step (slow: torch starts each time)
    python bench/bad_inputs.py --big        # also the 200 MB whitespace file (memory and time are printed)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COCO = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.jpg", "width": 32, "height": 32},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 2, 10, 20],
            "area": 200,
            "iscrowd": 0,
            "segmentation": [[1, 2, 11, 2, 11, 22]],
        },
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
}
TEXT = (
    "id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\nid: 7, height: 20, width: 30, "
    "bbox:[1, 2, 3, 4],\n"
)
VOC = (
    '<?xml version="1.0" encoding="{enc}"?><annotation><filename>{name}</filename>{size}'
    "<object><name>{obj}</name>"
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
    "</annotation>"
)
SIZE = "<size><width>64</width><height>48</height><depth>3</depth></size>"
DEEP = 100_000
BIG400, BIG5000 = "1" + "0" * 399, "1" + "0" * 4999


def _png(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 90, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _coco(patch) -> str:
    doc = json.loads(json.dumps(COCO))
    patch(doc)
    return json.dumps(doc)


def coco_cases(victim: Path) -> dict[str, bytes | str]:
    """name -> file content (COCO json)."""
    t = json.dumps(COCO)
    nest = "[" * DEEP + "]" * DEEP
    return {
        "empty.json": b"",
        "whitespace.json": b" \n" * 500_000,
        "truncated.json": t[: len(t) // 2],
        "root_array.json": "[1, 2, 3]",
        "deep_root.json": nest,
        "deep_images.json": '{"images": ' + nest + "}",
        "deep_unknown_key.json": t[:-1] + ', "x": ' + nest + "}",
        "deep_objects.json": '{"a":' * 50_000 + "1" + "}" * 50_000,
        "width_400_digits.json": t.replace('"width": 64', f'"width": {BIG400}'),
        "id_400_digits.json": t.replace('"id": 1, "file_name"', f'"id": {BIG400}, "file_name"'),
        "width_5000_digits.json": t.replace('"width": 64', f'"width": {BIG5000}'),
        "bbox_5000_digits.json": t.replace("[0, 0, 5, 5]", f"[0, 0, {BIG5000}, 5]"),
        "extra_5000_digits.json": t[:-1] + f', "x": {BIG5000}' + "}",
        "float_1e400.json": t.replace('"area": 25', '"area": 1e400'),
        "bom.json": b"\xef\xbb\xbf" + t.encode(),
        "utf16.json": t.encode("utf-16"),
        "utf16be.json": t.encode("utf-16-be"),
        "utf32.json": t.encode("utf-32"),
        "latin1.json": t.replace('"cat"', '"caf\u00e9"').encode("latin-1"),
        "lone_surrogate.json": t.replace('"a.jpg"', '"\\ud800.jpg"'),
        "lone_surrogate_key.json": t.replace('"cat"}', '"cat", "\\udfff": 1}'),
        "nan.json": t.replace('"width": 64', '"width": NaN'),
        "infinity.json": t.replace("[1, 2, 10, 20]", "[1, 2, Infinity, 20]"),
        "negative_size.json": t.replace('"width": 64', '"width": -64'),
        "width_string.json": t.replace('"width": 64', '"width": "64"'),
        "bbox_null.json": t.replace("[0, 0, 5, 5]", "null"),
        "no_images.json": '{"annotations": []}',
        "images_not_list.json": '{"images": {"id": 1}}',
        "file_name_number.json": t.replace('"a.jpg"', "7"),
        "iscrowd_bool.json": t.replace('"iscrowd": 0}', '"iscrowd": true}'),
        "info_list.json": t[:-1] + ', "info": [1]}',
        "category_dropped.json": t.replace('{"id": 2, "name": "dog"}', '{"id": 2, "name": 5}'),
        "dup_ids.json": _coco(
            lambda d: (
                d["images"].append(dict(d["images"][0])),
                d["annotations"].append(dict(d["annotations"][0])),
            )
        ),
        "bad_polygon.json": t.replace("[[1, 2, 11, 2, 11, 22]]", "[[1, 2, 3]]"),
        "absolute_file_name.json": t.replace('"a.jpg"', json.dumps(str(victim / "a.jpg"))),
        "climbing_file_name.json": t.replace('"a.jpg"', '"../../../victim/a.jpg"').replace(
            '"b.jpg"', '"../../../../etc/passwd"'
        ),
        "nul_file_name.json": t.replace('"a.jpg"', '"a\\u0000.jpg"'),
        "dot_file_name.json": t.replace('"a.jpg"', '"."').replace('"b.jpg"', '"sub/"'),
        "binary.json": bytes(range(256)) * 8,
    }


def text_cases() -> dict[str, bytes | str]:
    return {
        "empty.txt": b"",
        "garbage.txt": "hello world\n",
        "nan.txt": "id: 0, height: nan, width: 1093, bbox:[69, 464, 312, 175],\n",
        "huge.txt": f"id: 0, height: {BIG5000}, width: 1093, bbox:[69, 464, {BIG400}, 175],\n",
        "class_999.txt": "id: 999, height: 3, width: 10, bbox:[1, 1, 1, 1],\n",
        "bom.txt": b"\xef\xbb\xbf" + TEXT.encode(),
        "utf16.txt": TEXT.encode("utf-16"),
        "binary.txt": bytes(range(256)) * 8,
    }


def voc_cases() -> dict[str, bytes | str]:
    ok = {"enc": "UTF-8", "name": "a.jpg", "size": SIZE, "obj": "cat"}
    return {
        "malformed.xml": "<annotation><size><width>4</width>",
        "shift_jis.xml": VOC.format(**{**ok, "enc": "Shift_JIS", "name": "写真.jpg", "obj": "猫"}).encode(
            "shift_jis"
        ),
        "gbk.xml": VOC.format(**{**ok, "enc": "GBK", "obj": "猫"}).encode("gbk"),
        "unknown_encoding.xml": VOC.format(**{**ok, "enc": "no-such-codec"}),
        "climbing_filename.xml": VOC.format(**{**ok, "name": "../../../victim/a.jpg"}),
        "absolute_filename.xml": VOC.format(**{**ok, "name": "/etc/passwd"}),
        "huge_numbers.xml": VOC.format(**ok).replace("<xmin>1</xmin>", f"<xmin>{BIG5000}</xmin>"),
        "billion_laughs.xml": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">' for i in range(10)
        )
        + "]><annotation><filename>&lol9;</filename></annotation>",
        "deep.xml": "<annotation>" + "<a>" * 50_000 + "</a>" * 50_000 + "</annotation>",
    }


def folder_cases(root: Path) -> list[Path]:
    """YOLO and VOC folders with broken images or labels (made under ``root``)."""
    out = []

    def yolo(
        name: str, label: str, image: bytes, image_name: str = "a.jpg", classes: str = "cat\ndog\n"
    ) -> None:
        d = root / name
        (d / "images").mkdir(parents=True)
        (d / "labels").mkdir()
        (d / "images" / image_name).write_bytes(image)
        (d / "labels" / (Path(image_name).stem + ".txt")).write_text(label)
        (d / "classes.txt").write_text(classes)
        out.append(d)

    jpg = _jpeg()
    yolo("yolo_png_bomb", "0 0.5 0.5 0.1 0.1\n", _png(60000, 60000), "a.png")
    yolo("yolo_truncated_jpeg", "0 0.5 0.5 0.1 0.1\n", jpg[: len(jpg) // 3])
    yolo("yolo_empty_image", "0 0.5 0.5 0.1 0.1\n", b"")
    yolo("yolo_pixels", "0 320 240 64 48\n", jpg)
    yolo("yolo_polygon", "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n", jpg)
    yolo("yolo_garbage", "\x00\xff nonsense\n1e999 nan inf -inf 5\n", jpg)
    yolo("yolo_class_huge", f"{BIG5000} 0.5 0.5 0.1 0.1\n", jpg)
    yolo("yolo_utf16_label", "0 0.5 0.5 0.1 0.1\n".encode("utf-16").decode("latin-1"), jpg)
    # data.yaml counts, alias bombs, roots, special label files
    bomb = "".join(
        [f"a0: &a0 [{', '.join(['x'] * 9)}]\n"]
        + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    )
    for name, text in (
        ("yaml_nc_10_12", "train: images\nnc: 1000000000000\n"),
        ("yaml_alias_bomb_names", bomb + "train: images\nnames: *a8\n"),
        ("yaml_alias_bomb_train", bomb + "train: *a8\n"),
        ("yaml_path_root", "path: /\ntrain: .\nnames: [cat]\n"),
        ("yaml_path_proc", "path: /proc\ntrain: .\nnames: [cat]\n"),
        ("yaml_huge", "train: images\nnames: [cat]\n#" + "x" * (5 << 20) + "\n"),
    ):
        yolo(name, "0 0.5 0.5 0.1 0.1\n", jpg)
        (root / name / "data.yaml").write_text(text)
    yolo("yolo_label_fifo", "", jpg)
    (root / "yolo_label_fifo" / "labels" / "a.txt").unlink()
    os.mkfifo(root / "yolo_label_fifo" / "labels" / "a.txt")
    yolo("yolo_label_dev_zero", "", jpg)
    (root / "yolo_label_dev_zero" / "labels" / "a.txt").unlink()
    (root / "yolo_label_dev_zero" / "labels" / "a.txt").symlink_to("/dev/zero")
    voc = root / "voc_bomb_no_size"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "JPEGImages" / "a.png").write_bytes(_png(60000, 60000))
    (voc / "Annotations" / "a.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    out.append(voc)
    return out


def commands(src: str, out: str, train: bool) -> list[tuple[str, list[str], str]]:
    """(name, argv, output path) of every data command on one input."""
    cmds = [
        ("inspect", ["coco", "inspect", src], ""),
        ("inspect --json", ["coco", "inspect", src, "--json"], ""),
        ("validate", ["coco", "validate", src, "--json"], ""),
        ("validate --fix", ["coco", "validate", src, "--fix", f"{out}/fixed.json"], f"{out}/fixed.json"),
        ("classes", ["coco", "classes", src, "--csv", f"{out}/classes.csv"], f"{out}/classes.csv"),
        ("convert yolo", ["coco", "convert", src, f"{out}/yolo", "--to", "yolo"], f"{out}/yolo"),
        ("convert voc", ["coco", "convert", src, f"{out}/voc", "--to", "voc"], f"{out}/voc"),
        ("convert coco", ["coco", "convert", src, f"{out}/c.json", "--to", "coco"], f"{out}/c.json"),
        (
            "anchors",
            ["anchors", "kmeans", src, "--k", "2", "--out", f"{out}/anchors.json"],
            f"{out}/anchors.json",
        ),
    ]
    if train:
        cmds.append(
            (
                "yolo train",
                [
                    "yolo",
                    "train",
                    "--data",
                    src,
                    "--out",
                    f"{out}/run",
                    "--epochs",
                    "1",
                    "--max-steps",
                    "1",
                    "--img-size",
                    "64",
                    "--batch",
                    "2",
                    "--workers",
                    "0",
                    "--threads",
                    "1",
                ],
                f"{out}/run",
            )
        )
    return cmds


def _snapshot(folder: Path) -> dict[str, str]:
    snap = {}
    for p in folder.rglob("*"):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            snap[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            snap[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
        else:
            snap[rel] = "dir"
    return snap


MEM_BYTES = 2 << 30


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEM_BYTES, MEM_BYTES))


def run_one(sandbox_root: Path, make_input, cmd_name: str, argv_of, timeout: float) -> dict:
    """Run one command on one input in a fresh sandbox; classify the outcome."""
    parent = Path(tempfile.mkdtemp(prefix="bad-", dir=sandbox_root))  # nothing but box/ may appear here
    box = parent / "box"
    (box / "victim").mkdir(parents=True)
    (box / "victim" / "a.jpg").write_bytes(b"not really a jpeg")
    (box / "victim" / "a.txt").write_text("the user's own file")
    src = make_input(box)
    out = box / "work" / "out"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv, out_path = argv_of(str(src), str(out))
    before = _snapshot(box)
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "detkit", *argv],
            capture_output=True,
            timeout=timeout,
            cwd=box / "work",
            env={
                **os.environ,
                "DETKIT_NO_PROGRESS": "1",
                "OMP_NUM_THREADS": "1",
                "DETKIT_CACHE_DIR": str(parent / "cache"),  # beside the box: never in the input
            },
            check=False,
            preexec_fn=_cap_memory,
        )
        code, err = r.returncode, r.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        code, err = "timeout", ""
    wall = time.perf_counter() - t0
    after = _snapshot(box)
    allowed = (str(Path(out_path).relative_to(box)),) if out_path else ()
    changed = sorted(
        k
        for k in set(before) | set(after)
        if before.get(k) != after.get(k)
        and not any(k == a or k.startswith(a + "/") for a in allowed)
        and k not in ("work/out",)  # the output folder's parent may be created
    )
    outside_box = sorted(set(os.listdir(parent)) - {"box", "cache"})
    shutil.rmtree(parent, ignore_errors=True)
    traceback = (
        "Traceback (most recent call last)" in err
        or "MemoryError" in err
        or "Warning:" in err
        or code not in (0, 1, 2)
    )
    return {
        "command": cmd_name,
        "code": code,
        "traceback": traceback,
        "wall_s": round(wall, 2),
        "outside": changed + outside_box,
        "multi_line": code == 2 and not _one_error_line(err),
        "stderr_tail": err.strip().splitlines()[-1][:200] if err.strip() else "",
    }


def _one_error_line(err: str) -> bool:
    """Exactly one ``detkit: error:`` line, and nothing else but warnings and notes (a usage box, a
    traceback or a wrapped message are more)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("detkit: error:")]
    other = [
        ln for ln in lines if not ln.startswith(("detkit: error:", "warning:", "note:", "wrote ", "removed "))
    ]
    return len(errors) == 1 and not other


def build_inputs(tmp: Path) -> list[tuple[str, callable]]:
    """(input name, maker: sandbox -> input path)."""
    inputs = []

    def file_maker(name: str, content, fixed_victim: bool = False):
        def make(box: Path) -> Path:
            d = box / "work" / "in" / "annotations"
            d.mkdir(parents=True)
            (box / "work" / "in" / "images").mkdir()
            (box / "work" / "in" / "images" / "a.jpg").write_bytes(_JPEG)
            data = coco_cases(box / "victim")[name] if fixed_victim else content
            p = d / name
            p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
            return p

        return make

    for name in coco_cases(Path("/victim")):
        inputs.append((name, file_maker(name, None, fixed_victim=True)))
    for name, content in {**text_cases(), **voc_cases()}.items():
        inputs.append((name, file_maker(name, content)))
    for folder in folder_cases(tmp / "folders"):

        def make(box: Path, folder=folder) -> Path:
            dst = box / "work" / "in" / folder.name
            shutil.copytree(folder, dst, symlinks=True, copy_function=_copy_special)
            return dst

        inputs.append((folder.name + "/", make))
    inputs.append(("/dev/null (--format coco)", lambda box: Path("/dev/null")))
    return inputs


_JPEG = b""


def _copy_special(src: str, dst: str) -> None:
    """shutil's copy, but a FIFO is made anew (copying one would wait for a writer)."""
    import stat as st

    if st.S_ISFIFO(os.lstat(src).st_mode):
        os.mkfifo(dst)
    else:
        shutil.copy2(src, dst)


# ---- results files for `coco eval`, outputs inside the input ------------------------------------------
PRED = '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]'


def pred_cases() -> dict[str, object]:
    """Results files (bytes), or a callable making a special file at the path it is given."""
    return {
        "pred_id_2_70.json": PRED.replace('"image_id": 1', f'"image_id": {2**70}').encode(),
        "pred_id_29_digits.json": PRED.replace('"image_id": 1', '"image_id": ' + "9" * 29).encode(),
        "pred_bom.json": b"\xef\xbb\xbf" + PRED.encode(),
        "pred_object.json": b'{"annotations": []}',
        "pred_1e308.json": PRED.replace("[1, 2, 3, 4]", "[1e308, 2, 1e308, 4]").encode(),
        "pred_fifo.json": lambda p: os.mkfifo(p),
        "pred_dev_zero.json": lambda p: p.symlink_to("/dev/zero"),
    }


def extra_jobs() -> list[tuple[str, callable, str, callable]]:
    """(input, maker, command, argv_of) of the issue-23 runs that are not one command per input."""
    jobs = []
    for name, content in pred_cases().items():

        def make(box: Path, name=name, content=content) -> Path:
            d = box / "work" / "in"
            d.mkdir(parents=True)
            (d / "gt.json").write_text(json.dumps(COCO))
            p = d / name
            content(p) if callable(content) else p.write_bytes(content)
            return p

        def argv_of(src: str, out: str) -> tuple[list[str], str]:
            return ["coco", "eval", str(Path(src).parent / "gt.json"), src, "--json"], ""

        jobs.append((name, make, "eval", argv_of))

    def yolo_in(box: Path) -> Path:  # a data.yaml dataset; OUT goes inside its image folder
        d = box / "work" / "in" / "ds"
        (d / "images" / "train").mkdir(parents=True)
        (d / "labels" / "train").mkdir(parents=True)
        (d / "images" / "train" / "a.jpg").write_bytes(_JPEG)
        (d / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
        (d / "data.yaml").write_text("train: images/train\nnames: [cat]\n")
        return d / "data.yaml"

    inside = {
        "filter --copy-images": ["coco", "filter", "{y}", "{o}", "--copy-images"],
        "sample": ["coco", "sample", "{y}", "{o}", "--n", "1"],
        "split": ["coco", "split", "{y}", "{o}"],
        "draw": ["coco", "draw", "{y}", "{o}"],
        "merge": ["coco", "merge", "{y}", "{y}", "{o}"],
        "convert voc": ["coco", "convert", "{y}", "{o}", "--to", "voc"],
    }
    for cmd, argv in inside.items():

        def argv_of(src: str, out: str, argv=argv) -> tuple[list[str], str]:
            o = str(Path(src).parent / "images" / "train" / "out")
            return [a.format(y=src, o=o) for a in argv], ""  # nothing may be written: no output allowed

        jobs.append(("out inside images/", yolo_in, cmd, argv_of))
    return jobs


def main() -> None:
    global _JPEG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", action="store_true", help="also run `yolo train` for one step on every input")
    ap.add_argument("--big", action="store_true", help="also the 200 MB whitespace file")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--mem-gb", type=float, default=2.0, help="address-space cap of each run (RLIMIT_AS)")
    ap.add_argument("--only", help="run only inputs whose name contains this")
    ap.add_argument("--command", help="run only commands whose name contains this (e.g. 'yolo train')")
    ap.add_argument("--json", action="store_true", help="print every run as JSON")
    args = ap.parse_args()
    _JPEG = _jpeg()
    tmp = Path(tempfile.mkdtemp(prefix="detkit-bad-inputs-"))
    sandbox_root = tmp / "boxes"
    sandbox_root.mkdir()
    inputs = build_inputs(tmp)
    if args.big:
        inputs.append(("whitespace_200MB.json", lambda box: _big_whitespace(box)))
    if args.only:
        inputs = [i for i in inputs if args.only in i[0]]
    jobs = []
    for name, make in inputs:
        for cmd_name, _, _ in commands("IN", "OUT", args.train):
            if args.command and args.command not in cmd_name:
                continue

            def argv_of(src, out, cmd_name=cmd_name, name=name):
                argv, path = next((a, p) for n, a, p in commands(src, out, args.train) if n == cmd_name)
                if name.startswith("/dev/null"):
                    argv = argv[:3] + ["--format", "coco"] + argv[3:] if argv[0] == "coco" else argv
                return argv, path

            jobs.append((name, make, cmd_name, argv_of))
    if not args.command or args.command == "eval":
        jobs += [j for j in extra_jobs() if not args.only or args.only in j[0]]
    global MEM_BYTES
    MEM_BYTES = int(args.mem_gb * (1 << 30))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(lambda j: {"input": j[0], **run_one(sandbox_root, j[1], j[2], j[3], args.timeout)}, jobs)
        )
    shutil.rmtree(tmp, ignore_errors=True)
    tb = [r for r in results if r["traceback"]]
    outside = [r for r in results if r["outside"]]
    multi = [r for r in results if r["multi_line"]]
    if args.json:
        print(json.dumps(results, indent=1))
    for r in tb + outside + multi:
        print(
            f"  {r['input']:32} {r['command']:16} exit {r['code']}  outside={r['outside'][:3]}  "
            f"{r['stderr_tail']}",
            file=sys.stderr,
        )
    codes = {c: sum(r["code"] == c for r in results) for c in (0, 1, 2)}
    print(
        f"{len(results)} runs ({len(inputs)} inputs x {len(results) // max(1, len(inputs))} commands) in "
        f"{time.perf_counter() - t0:.0f} s: tracebacks {len(tb)}, writes outside the output folder "
        f"{len(outside)}, "
        f"multi-line errors {len(multi)}; exit 0/1/2: {codes[0]}/{codes[1]}/{codes[2]}",
        file=sys.stderr if args.json else sys.stdout,
    )
    sys.exit(1 if tb or outside or multi else 0)


def _big_whitespace(box: Path) -> Path:
    d = box / "work" / "in"
    d.mkdir(parents=True)
    p = d / "whitespace_200MB.json"
    with open(p, "wb") as f:
        block = b" " * (1 << 20)
        f.writelines(block for _ in range(200))
    return p


if __name__ == "__main__":
    main()
