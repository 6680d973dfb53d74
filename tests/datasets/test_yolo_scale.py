"""The YOLO reader at scale: the numpy label parser gives the per-line reader's rows
exactly (and leaves every file it would not keep whole to that reader), and JPEG sizes from the header
bytes are PIL's (the cache of a read: test_yolo_cache.py)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest

from detkit.datasets.formats import yolo_scan
from detkit.datasets.formats.readers import jpeg_size
from detkit.datasets.formats.yolo import YOLO_TOL, Reporter, _yolo_rows, load_yolo
from detkit.datasets.formats.yolo_rows import parse_labels
from tests.datasets.test_layouts import write_image

TOKENS = [
    "0.5",
    "0.123456",
    "1",
    "0",
    "-0.0",
    "+0.3",
    ".5",
    "5.",
    "1.005",
    "0.4794921874999999",
    "1e-3",
    "0.5.5",
    "abc",
    "-0.02",
    "1.02",
    "0.0000001",
    "nan",
    "00.25",
    "0x1",
    "1_0",
    "0.99999999999999",
]
CLASSES = ["0", "1", "79", "007", "+1", "-1", "1.0", "99999", "100000", "1e1", "2"]


def _files(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)

    def line() -> str:
        r = rng.random()
        if r < 0.02:
            return ""
        if r < 0.05:
            return " ".join(rng.choice(TOKENS) for _ in range(rng.choice([3, 4, 6, 7, 9])))
        sep = rng.choice([" ", "  ", "\t"])
        return (
            rng.choice(CLASSES)
            + sep
            + " ".join(rng.choice(TOKENS) for _ in range(4))
            + rng.choice(["", " ", "\r"])
        )

    out = []
    for _ in range(n):
        lines = [line() for _ in range(rng.randint(0, 6))]
        if rng.random() < 0.1 and lines:
            lines.append(lines[0])  # a duplicate row
        text = "\n".join(lines) + rng.choice(["", "\n", "\n\n"])
        if rng.random() < 0.02:
            text = "\ufeff" + text
        if rng.random() < 0.02:
            text = text.replace("\n", "\x0c")
        out.append(text.encode())
    return out


@pytest.mark.parametrize("nc, batch", [(80, 1 << 20), (None, 256)])
def test_fast_rows_equal_the_per_line_reader(nc, batch):
    big = "".join(f"{i % 7} 0.5 0.{i:03d} 0.25 0.25\n" for i in range(80)).encode()  # cut into pieces
    blobs = _files(1500, seed=0) + [big]
    top = nc if nc is not None else 100_000
    r = parse_labels(blobs, top, YOLO_TOL, batch_bytes=batch)
    fast = 0
    for k, b in enumerate(blobs):
        rep = Reporter()
        ref = _yolo_rows(Path(f"f{k}.txt"), b.decode("utf-8-sig"), nc, rep)
        m = r.file == k
        if r.slow[k]:
            assert not m.any()
            continue
        fast += 1
        assert not rep.items, (k, b)  # a file with anything to report never takes the fast path
        got = list(zip(r.cls[m].tolist(), *r.box[m].T.tolist(), r.line[m].tolist()))
        assert got == [tuple(x) for x in ref], (k, b)  # the same floats, bit for bit, and line numbers
    assert fast > 150 and not r.slow[-1]  # (most random files hold a token that needs the per-line reader)
    assert r.line[r.file == len(blobs) - 1].tolist() == list(range(1, 81))


def test_plain_label_files_take_the_fast_path():
    rows = b"0 0.479492 0.688771 0.955609 0.5955\n45 0.736516 0.247188 0.498875 0.476417\n"
    r = parse_labels([rows, b"", rows.replace(b"\n", b"\r\n"), b"3 1.005 0.5 0.5 0.5"], 80, YOLO_TOL)
    assert not r.slow.any()
    assert r.file.tolist() == [0, 0, 2, 2, 3] and r.line.tolist() == [1, 2, 1, 2, 1]
    assert r.cls.tolist() == [0, 45, 0, 45, 3]
    assert r.box[1].tolist() == [0.736516, 0.247188, 0.498875, 0.476417]


def test_fields_up_to_15_bytes_take_the_fast_path_exactly():
    long = "0.1234567890123"  # 15 bytes: 14 digits, the most a 15-byte field holds after its point
    rows = f"1 {long} 0.5 -0.0 +.25\n".encode()
    r = parse_labels([rows, rows.replace(b"0.1234567890123", b"0.12345678901234")], 80, YOLO_TOL)
    assert r.slow.tolist() == [False, True]  # 16 bytes: left to the per-line reader
    assert r.box.tolist() == [[float(long), 0.5, -0.0, 0.25]] and np.signbit(r.box[0, 2])
    ref = _yolo_rows(Path("b.txt"), "1 0.12345678901234 0.5 -0.0 +.25\n", 80, Reporter())
    assert ref == [(1, 0.12345678901234, 0.5, -0.0, 0.25, 1)]  # which reads it as float() does


def _same_as_reader(blobs: list[bytes], r, nc: int | None = 80, reported: bool = False) -> list[int]:
    """The files of ``blobs`` that took the fast path, each checked: nothing for the per-line reader to
    report and its rows, bit for bit (sign of zero included), with their line numbers; a file left to that
    reader holds no row (and, with ``reported``, has something it reports)."""
    fast = []
    for k, b in enumerate(blobs):
        rep = Reporter()
        ref = _yolo_rows(Path(f"f{k}.txt"), b.decode("utf-8-sig"), nc, rep)
        m = r.file == k
        if r.slow[k]:
            assert not m.any() and (rep.items or not reported), (k, b)
            continue
        fast.append(k)
        assert not rep.items, (k, b)
        got = list(zip(r.cls[m].tolist(), *r.box[m].T.tolist(), r.line[m].tolist()))
        assert got == [tuple(x) for x in ref], (k, b)
        want = np.array([x[1:5] for x in ref], dtype=np.float64).reshape(-1, 4)
        assert np.array_equal(r.box[m].view(np.uint64), want.view(np.uint64)), (k, b)
    return fast


def _spy(monkeypatch) -> dict[str, int]:
    """Counts of batches read by each path of the parser."""
    from detkit.datasets.formats import yolo_rows

    calls = {"uniform": 0, "general": 0}
    uniform, general = yolo_rows._parse_uniform, yolo_rows._parse_general

    def spy_uniform(*a, **k):
        got = uniform(*a, **k)
        calls["uniform"] += got is not None
        return got

    def spy_general(*a, **k):
        calls["general"] += 1
        return general(*a, **k)

    monkeypatch.setattr(yolo_rows, "_parse_uniform", spy_uniform)
    monkeypatch.setattr(yolo_rows, "_parse_general", spy_general)
    return calls


def _token(rng: random.Random, size: int, point: int) -> str:
    """A field of ``size`` bytes with the point at byte ``point`` (-1: none), mostly within 0..1."""
    digits = [rng.choice("0123456789") for _ in range(size)]
    whole = range(point if point >= 0 else size)
    for i in whole:
        digits[i] = "0"
    if whole and rng.random() < 0.1:
        digits[whole[-1]] = "1"  # 1.xxx: above 1 + tol when xxx >= .01
    if point >= 0:
        digits[point] = "."
    return "".join(digits)


@pytest.mark.parametrize(
    "size, point, eol",
    [(8, 1, "\n"), (8, 1, "\r\n"), (2, 0, "\n"), (2, 1, "\n"), (1, -1, "\n"), (6, 2, "\n"), (8, 7, "\n")],
)
def test_fields_of_one_shape_take_the_uniform_path_exactly(monkeypatch, size, point, eol):
    # 0.dddddd (ultralytics), .5, 1., 0 / 1, 00.ddd, 0000000.: every line the first line's shape
    rng = random.Random(size * 10 + point)
    classes = ["0", "7", "79", "007", "000079", "100000", "80"]
    blobs = []
    for _ in range(300):
        lines = [
            rng.choice(classes) + " " + " ".join(_token(rng, size, point) for _ in range(4))
            for _ in range(rng.randint(0, 5))
        ]
        if lines and rng.random() < 0.1:
            lines.append(lines[0])  # a duplicate row
        blobs.append((eol.join(lines) + (rng.choice(["", eol]) if lines else "")).encode())
    calls = _spy(monkeypatch)
    r = parse_labels(blobs, 80, YOLO_TOL, batch_bytes=512)
    assert calls["general"] == 0 and calls["uniform"] > 5
    fast = _same_as_reader(blobs, r, reported=True)
    # left to the per-line reader: classes 100000 and 80, values above 1.01, duplicates; the rest not
    assert 30 < len(fast) < 300 and any(b.count(b"\n") > 2 for b in (blobs[k] for k in fast))


@pytest.mark.parametrize(
    "odd",
    [
        "3 0.123456 0.12345 0.123456 0.123456",  # a field of another length
        "3 0.123456 0.123456 00.12345 0.123456",  # the point elsewhere
        "3 0.123456 +0.12345 0.123456 -0.00000",  # signs (-0.0 keeps its sign)
        "3 0.123456 0.1234567890123 0.5 0.25",  # 15 bytes
        "3 1. .5 0.123456 0.123456",
        "3 0.123456\t0.123456 0.123456 0.123456",  # a tab
        "3  0.123456 0.123456 0.123456 0.123456",  # two spaces
        "3 0.123456 0.123456 0.123456 0.123456 ",  # a space at the end
        "\n3 0.123456 0.123456 0.123456 0.123456",  # a blank line
        "3 0.123456 0.123456\r 0.123456 0.123456",  # \r not before \n
        "3 0.123456 0.123456 0.123456 0.123456\r\r",
        "1234567 0.123456 0.123456 0.123456 0.123456",  # a class of 7 digits
        "+3 0.123456 0.123456 0.123456 0.123456",
        "3 0.123456 0.123456 0.123456 0.1234a6",
        "3 0.123456 0.123456 0.123456",
    ],
)
def test_a_batch_of_another_shape_is_read_by_the_general_path(monkeypatch, odd):
    plain = b"12 0.687323 0.202846 0.353975 0.145409\n0 0.383562 0.607362 0.236854 0.454275\n"
    blobs = [plain, (odd + "\n").encode(), plain]
    calls = _spy(monkeypatch)
    r = parse_labels(blobs, 80, YOLO_TOL)
    assert calls == {"uniform": 0, "general": 1}
    ref = _yolo_rows(Path("odd.txt"), odd + "\n", 80, Reporter())
    fast = _same_as_reader(blobs, r)
    assert fast == ([0, 1, 2] if ref and not r.slow[1] else [0, 2])
    assert r.file.tolist()[:2] == [0, 0] and r.line.tolist()[:2] == [1, 2]


def test_a_field_with_its_point_past_byte_8_is_read_by_the_column_reader(monkeypatch):
    from detkit.datasets.formats import yolo_rows

    calls = []
    numbers = yolo_rows._numbers
    monkeypatch.setattr(yolo_rows, "_numbers", lambda *a: calls.append(1) or numbers(*a))
    blobs = [b"3 00000000.5 0.5 +00000000.25 0.125\n1 0.5 0.5 0.5 0.5\n"]
    r = parse_labels(blobs, 80, YOLO_TOL)
    assert calls and _same_as_reader(blobs, r) == [0]
    assert r.box.tolist() == [[0.5, 0.5, 0.25, 0.125], [0.5] * 4]


def test_a_line_of_separators_is_blank():
    # four spaces and a newline, as a row's separators are: no field, so a blank line (the file kept)
    one, two = b"12 0.5 0.25 0.125 0.0625\n", b"7 0.5 0.25 0.125 0.0625\n"
    for blank in [b"    \n", b" \n", b"\t\n", b"\n"]:
        r = parse_labels([one + blank + two], 80, YOLO_TOL)
        assert not r.slow.any() and r.line.tolist() == [1, 3], blank
    r = parse_labels([one + b"3    \n" + two], 80, YOLO_TOL)  # 5 separators, one field
    assert r.slow.tolist() == [True]


def test_a_file_cut_into_batches_of_both_paths(monkeypatch):
    rng = random.Random(5)
    uniform = [
        f"{rng.randrange(80)} " + " ".join(f"0.{rng.randrange(10**6):06d}" for _ in range(4))
        for _ in range(60)
    ]
    other = [f"{rng.randrange(80)} 0.5 0.{rng.randrange(10**5)} 0.25 0.125" for _ in range(60)]
    text = "\n".join(uniform[:30] + other[:30] + uniform[30:] + other[30:]) + "\n"
    dup = text + "5 0.5 0.5 0.25 0.25\n" + uniform[2] + "\n5 0.500000 0.500000 0.250000 0.250000\n"
    blobs = [text.encode(), dup.encode()]
    calls = _spy(monkeypatch)
    r = parse_labels(blobs, 80, YOLO_TOL, batch_bytes=256)
    assert calls["uniform"] > 3 and calls["general"] > 3
    assert _same_as_reader(blobs, r) == [0]  # file 1: duplicates across the two paths
    assert r.line.tolist() == list(range(1, 121))
    rep = Reporter()
    _yolo_rows(Path("dup.txt"), dup, 80, rep)
    assert len(rep.items) == 2


def _read_tokens(tokens: list[str]):
    from detkit.datasets.formats.yolo_rows import MAX_TOKEN

    text = " ".join(tokens).encode() + b"\n"
    a = np.frombuffer(text + b" " * MAX_TOKEN, dtype=np.uint8)
    start = np.array([0] + [m + 1 for m, c in enumerate(text) if c == 32], dtype=np.int64)
    return a, start, np.array([len(t) for t in tokens], dtype=np.int64)


def test_numbers_a_word_at_a_time_equal_the_column_reader():
    from detkit.datasets.formats.yolo_rows import _numbers, _numbers_words

    rng = random.Random(7)
    edge = ["0.1234567", ".5", "5.", "+.5", "-0.0", "+", "-", ".", "+-1", "1.2.3", "0.12345678901234"]
    edge += ["-0.12345678901", "1234567", "0.0123457", "0000000.5", "1e-3", "nan", "0x1", "07", "+7", "-.0"]
    tokens = []
    for _ in range(20000):
        size = rng.randint(1, 15)
        t = [rng.choice("0123456789") for _ in range(size)]
        if rng.random() < 0.9:
            t[rng.randrange(min(size, 8))] = "."  # a point among the first 8 bytes
        if rng.random() < 0.1:
            t[rng.randrange(size)] = rng.choice(".+-ex")
        if rng.random() < 0.2 and size < 15:
            t.insert(0, rng.choice("+-"))
        tokens.append("".join(t))
    body = [t[1:] if t[0] in "+-" else t for t in tokens]  # (after one sign)
    tokens = [t for t, b in zip(tokens, body) if len(b) < 8 or "." in b[:8]]
    a, start, length = _read_tokens(edge + tokens)
    (values, ok, plain), (v, o, p) = _numbers(a, start, length), _numbers_words(a, start, length)
    assert np.array_equal(o, ok) and np.array_equal(p, plain) and 0.5 < ok.mean() < 0.9
    assert np.array_equal(v[ok].view(np.uint64), values[ok].view(np.uint64))  # bit for bit
    assert "".join("01"[x] for x in ok[: len(edge)].tolist()) == "11111000001" + "1111000111"
    # a token of 8 bytes or more without a point among its first 8: left to the column reader
    assert _numbers_words(*_read_tokens(["0.5", "-12345678"])) is None


def test_label_files_in_one_pass_follow_the_rule(tmp_path):
    from detkit.datasets.formats.yolo import _Files, _label_file, _label_files

    img_dir, lbl_dir = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    (lbl_dir / "a.b").mkdir(parents=True)
    img_dir.mkdir(parents=True)
    for name in ["x.txt", "y.txt", "a.b/z.txt", ".hidden.txt", "dots..txt", "noext.txt", "w.txt"]:
        (lbl_dir / name).write_text("0 0.5 0.5 0.1 0.1\n")
    (img_dir / "v.txt").write_text("")  # a darknet-style .txt beside an image
    names = ["x.jpg", "y.PNG", "a.b/z.jpg", ".hidden", "dots..jpg", "noext", "w.", "v.jpg", "missing.jpg"]
    imgs = [str(img_dir / n) for n in names] + [str(tmp_path / "elsewhere" / "x.jpg")]
    files = _Files([lbl_dir])
    pairs = [(str(img_dir) + os.sep, str(lbl_dir) + os.sep)]
    got = _label_files(imgs, pairs, files)
    assert got == [_label_file(s, pairs, files) for s in imgs]
    assert [Path(g).name for g in got[:3]] == ["x.txt", "y.txt", "z.txt"]


def test_jpeg_size_is_pils_or_none():
    from PIL import Image

    for mode, kw in [
        ("RGB", {}),
        ("L", {}),
        ("CMYK", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"dpi": (72, 72)}),
        ("RGB", {"exif": Image.Exif()}),
        ("RGB", {"icc_profile": b"x" * 100}),
    ]:
        buf = io.BytesIO()
        Image.new(mode, (37, 21)).save(buf, "JPEG", **kw)
        assert jpeg_size(buf.getvalue(), Image.MAX_IMAGE_PIXELS) == (37, 21)
    buf = io.BytesIO()
    Image.new("RGB", (50, 40)).save(buf, "JPEG", dpi=(10, 10))
    base = buf.getvalue()
    rng = random.Random(1)
    for _ in range(3000):  # damaged headers: a size given is PIL's, else None (PIL decides)
        d = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            d[rng.randrange(0, 200)] = rng.randrange(256)
        got = jpeg_size(bytes(d), Image.MAX_IMAGE_PIXELS)
        if got is not None:
            assert Image.open(io.BytesIO(bytes(d))).size == got
    assert jpeg_size(b"\x89PNG\r\n\x1a\n", 10**9) is None


def _dataset(root: Path, n: int = 3) -> Path:
    for i in range(n):
        write_image(root / "images" / "train" / f"{i}.jpg", (32 + i, 24), seed=i)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{i}.txt").write_text(f"{i} 0.5 0.5 0.25 0.25\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b, c, d]\n")
    return root / "data.yaml"


def test_an_image_that_vanishes_after_the_listing_is_a_finding(tmp_path, monkeypatch):
    from detkit.datasets.formats.layouts import read_data_yaml
    from detkit.datasets.formats.yolo import read_yolo_layout

    monkeypatch.setenv("DETKIT_CACHE", "off")
    layout = read_data_yaml(_dataset(tmp_path / "d"))
    (tmp_path / "d" / "images" / "train" / "1.jpg").unlink()  # gone between the walk and the read
    ds = read_yolo_layout(layout)
    assert ds.num_images == 2
    gone = [s for s in ds.skipped if not s.kept]
    assert [(s.code, Path(s.path).name) for s in gone] == [("image.corrupt", "1.jpg")]
    assert "No such file" in gone[0].what


def test_walk_lists_as_sorted_rglob(tmp_path):
    from detkit.datasets.formats.readers import walk

    for rel in ["a/b/x.jpg", "a-c/y.jpg", "a/z.jpg", "b.jpg", "a/b/c/d/w.jpg", "a0/v.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "s").symlink_to(tmp_path / "a")  # listed, not entered
    assert walk(tmp_path, lambda e: True) == [str(p) for p in sorted(tmp_path.rglob("*"))]
    assert walk(tmp_path, lambda e: e.name.endswith(".jpg")) == [
        str(p) for p in sorted(tmp_path.rglob("*.jpg"))
    ]
    assert walk(tmp_path / "gone", lambda e: True) == []


def test_io_threads_from_the_environment_and_the_same_results(tmp_path, monkeypatch):
    for value, n in [(None, 1), ("3", 3), ("0", 1), ("x", 1), ("1000", yolo_scan.THREADS)]:
        if value is None:
            monkeypatch.delenv("DETKIT_IO_THREADS", raising=False)
        else:
            monkeypatch.setenv("DETKIT_IO_THREADS", value)
        assert yolo_scan.io_threads() == n
    items = list(range(5000))
    monkeypatch.setenv("DETKIT_IO_THREADS", "4")
    assert yolo_scan.pmap(lambda x: x * x, items, chunk=64) == [x * x for x in items]
    monkeypatch.setenv("DETKIT_CACHE", "off")
    y = _dataset(tmp_path / "d", n=4)
    threaded = load_yolo(y)
    monkeypatch.delenv("DETKIT_IO_THREADS")
    plain = load_yolo(y)
    assert threaded.bbox.tolist() == plain.bbox.tolist() and threaded.width.tolist() == plain.width.tolist()
