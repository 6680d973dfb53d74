"""A YOLO read is remembered, and given again only while no file it read or looked for and no folder it
listed has changed: each kind of change is seen, a change just before the read is never remembered, the
check gives the same answer in one process or two, and the dataset folder is never written."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from detkit import io as dkio
from detkit.datasets.formats import yolo, yolo_cache
from detkit.datasets.formats.yolo import load_yolo
from detkit.datasets.formats.yolo_scan import _is_txt
from detkit.datasets.model import Dataset
from detkit.errors import InputError
from tests.datasets.test_layouts import write_image
from tests.datasets.test_yolo_scale import _dataset


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of the test's own; files written by the test count as settled (no racy window)."""
    monkeypatch.setenv("DETKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(yolo_cache, "RACY_NS", 0)
    return tmp_path / "cache" / "yolo"


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """One item per read of the files (a read that was not given from the cache)."""
    calls: list[int] = []
    real = yolo._read_layout
    monkeypatch.setattr(yolo, "_read_layout", lambda *a: calls.append(1) or real(*a))
    return calls


def _kept(cache: Path, kind: str = "read") -> list[Path]:
    return sorted(cache.glob(f"{kind}-*"))


def _same(a: Dataset, b: Dataset) -> None:
    for f in fields(Dataset):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        elif f.name == "ann_record":
            assert list(x) == list(y)
        else:
            assert x == y, f.name


def test_a_read_is_given_again_until_a_file_or_folder_changes(tmp_path, cache, reads):
    y = _dataset(tmp_path / "d")
    (tmp_path / "d" / "images" / "train" / "3.jpg").write_bytes(b"")  # an empty image: a finding
    first = load_yolo(y)
    assert reads == [1] and len(_kept(cache)) == 1
    again = load_yolo(y)
    assert reads == [1]
    _same(first, again)
    assert [s.code for s in again.skipped] == ["image.empty"]
    assert [again.record(i) for i in range(3)] == ["0.txt line 1", "1.txt line 1", "2.txt line 1"]
    again.bbox[0, 0] = 5.0  # the columns given again can be written, and that changes nothing kept
    assert load_yolo(y).bbox[0, 0] == first.bbox[0, 0] and reads == [1]

    labels, images = tmp_path / "d" / "labels" / "train", tmp_path / "d" / "images" / "train"
    (labels / "1.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # in place: the same size and inode, new contents
    os.utime(labels / "1.txt", ns=(1, 1))  # even with an old time: the change time counts too
    assert load_yolo(y).bbox[1].tolist() == [33 * 0.25, 6.0, 33 * 0.5, 12.0] and reads == [1, 1]
    write_image(images / "2.jpg", (40, 24), seed=2)  # an image's size
    assert load_yolo(y).width.tolist() == [32, 33, 40] and reads == [1, 1, 1]
    (labels / "9.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a label file added: an orphan
    assert [s.code for s in load_yolo(y).skipped] == ["image.empty", "label.orphan"]
    write_image(images / "9.jpg", (20, 20), seed=9)  # its image added
    assert load_yolo(y).num_annotations == 4 and reads == [1, 1, 1, 1, 1]
    (labels / "0.txt").unlink()  # a label file removed: a background image
    assert load_yolo(y).num_annotations == 3 and reads == [1, 1, 1, 1, 1, 1]
    assert load_yolo(y).num_annotations == 3 and reads == [1, 1, 1, 1, 1, 1]
    # the dataset folder is never written
    assert sorted(p.name for p in (tmp_path / "d").rglob("*") if p.suffix not in (".jpg", ".txt")) == [
        "data.yaml",
        "images",
        "labels",
        "train",
        "train",
    ]


def test_box_records_by_line_and_by_run_given_again(tmp_path, cache, reads):
    y = _dataset(tmp_path / "d")
    first = load_yolo(y)  # each file's boxes its lines 1, 2, ...: records by run
    assert first.ann_record.line is None and reads == [1]
    assert [load_yolo(y).record(i) for i in range(3)] == ["0.txt line 1", "1.txt line 1", "2.txt line 1"]
    labels = tmp_path / "d" / "labels" / "train"
    (labels / "1.txt").write_text("\n1 0.5 0.5 0.5 0.5\n1 0.5 0.5 0.2 0.2\n")  # a blank first line
    again = load_yolo(y)  # records by box
    assert again.ann_record.line is not None and reads == [1, 1]
    _same(again, load_yolo(y))
    assert reads == [1, 1]
    assert list(load_yolo(y).ann_record) == ["0.txt line 1", "1.txt line 2", "1.txt line 3", "2.txt line 1"]


def test_the_key_the_source_and_the_names(tmp_path, cache, reads):
    y = _dataset(tmp_path / "d")
    load_yolo(y)
    load_yolo(y, names=["p", "q", "r", "s"])  # other names: another read
    assert reads == [1, 1] and load_yolo(y, names=["p", "q", "r", "s"]).cat_name.tolist() == list("pqrs")
    assert load_yolo(tmp_path / "d").source == str(tmp_path / "d") and reads == [1, 1, 1]
    (tmp_path / "d" / "data.yaml").write_text("train: images/train\nnames: [a, b, c, e]\n")
    assert load_yolo(y).cat_name.tolist() == ["a", "b", "c", "e"] and reads == [1, 1, 1, 1]


def test_a_label_looked_for_outside_the_listed_folders(tmp_path, cache, reads):
    """A split given as a list of images: their label files are looked for one by one, and one that
    appears later is seen."""
    root = tmp_path / "d"
    for i in range(2):
        write_image(root / "pics" / f"{i}.jpg", (32, 24), seed=i)
    (root / "train.txt").write_text("pics/0.jpg\npics/1.jpg\n")
    (root / "data.yaml").write_text("train: train.txt\nnames: [a]\n")
    assert load_yolo(root / "data.yaml").num_annotations == 0
    (root / "pics" / "1.txt").write_text("0 0.5 0.5 0.5 0.5\n")  # darknet: a label beside its image
    assert load_yolo(root / "data.yaml").num_annotations == 1 and reads == [1, 1]
    assert load_yolo(root / "data.yaml").num_annotations == 1 and reads == [1, 1]


def test_a_change_just_before_the_read_is_not_remembered(tmp_path, cache, monkeypatch, reads):
    y = _dataset(tmp_path / "d")
    monkeypatch.setattr(yolo_cache, "RACY_NS", 10**15)  # every file: changed "just now"
    load_yolo(y)
    load_yolo(y)
    assert reads == [1, 1] and _kept(cache) == [] and _kept(cache, "listing") == []
    monkeypatch.setattr(yolo_cache, "RACY_NS", 0)
    load_yolo(y)
    load_yolo(y)
    assert reads == [1, 1, 1] and len(_kept(cache)) == 1


def test_a_torn_or_foreign_cache_file_is_read_again(tmp_path, cache, reads):
    y = _dataset(tmp_path / "d")
    first = load_yolo(y)
    (kept,) = _kept(cache)
    for junk in (b"", b"detkit cache 1\n" + b"\0" * 100, kept.read_bytes()[:-20], b"x" * 5000):
        kept.write_bytes(junk)
        _same(load_yolo(y), first)
    assert len(reads) == 5
    _same(load_yolo(y), first)
    assert len(reads) == 5  # written again whole


def test_validate_and_strict_read_the_files(tmp_path, cache, reads):
    y = _dataset(tmp_path / "d")
    load_yolo(y)
    found = []
    load_yolo(y, on_error=lambda code, err: found.append(code))
    load_yolo(y, strict=True)
    assert reads == [1, 1, 1]


def test_a_listing_is_kept_until_a_folder_in_it_changes(tmp_path, cache, monkeypatch):
    for rel in ("a/1.txt", "a/b/2.txt", "c.txt", "d/x.txt"):
        (tmp_path / "t" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / rel).write_text("")
    (tmp_path / "t" / "d" / "x.txt").unlink()
    (tmp_path / "t" / "d" / "x.txt").mkdir()  # a folder named .txt: listed, not a file
    walks = []
    real = yolo_cache.walk
    monkeypatch.setattr(yolo_cache, "walk", lambda *a: walks.append(1) or real(*a))

    def names():
        got = yolo_cache.listing(tmp_path / "t", "txt", _is_txt, os.DirEntry.is_file)
        return [os.path.relpath(p, tmp_path / "t") for p in got.paths], got.flags

    want = (["a/1.txt", "a/b/2.txt", "c.txt", "d/x.txt"], [True, True, True, False])
    assert names() == want and names() == want and walks == [1]
    (tmp_path / "t" / "a" / "b" / "3.txt").write_text("")  # in a sub-folder
    assert names()[0] == ["a/1.txt", "a/b/2.txt", "a/b/3.txt", "c.txt", "d/x.txt"] and walks == [1, 1]
    (tmp_path / "t" / "a" / "e").mkdir()  # a folder made
    (tmp_path / "t" / "a" / "e" / "4.txt").write_text("")
    assert "a/e/4.txt" in names()[0] and walks == [1, 1, 1]
    assert names()[0][-1] == "d/x.txt" and walks == [1, 1, 1]


def test_each_input_is_stat_once_in_one_process_or_two(tmp_path, monkeypatch):
    files = []
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        for i in range(5):
            (tmp_path / d / f"{i}").write_text("." * i)
            files.append(str(tmp_path / d / f"{i}"))
    files.append(str(tmp_path / "x" / "gone"))  # looked for, not there
    stats = np.array([yolo_cache.stat_key(p) for p in files], np.int64)
    folders: list[str] = []
    parts = {}
    for name, v in yolo_cache.Inputs([(files[:7], stats[:7]), (files[7:], stats[7:])]).parts(folders):
        parts[name] = v if isinstance(v, np.ndarray) else b"".join(v)  # each taken whole, in turn
    packed_names = np.frombuffer(parts["inputs.names"], np.uint8)
    names = yolo_cache.unpack(packed_names, len(files))
    runs = parts["inputs.runs"]
    assert folders == [str(tmp_path / "x"), str(tmp_path / "y")]
    assert runs.tolist() == [[0, 0, 5], [1, 5, 10], [0, 10, 11]]
    assert names == [*"01234", *"01234", "gone"]
    assert parts["inputs.stats"] == stats.tobytes()

    def answers() -> list[bool]:
        out = [yolo_cache.unchanged(folders, packed_names, runs, stats)]
        for k, v in ((1, 99), (8, 99), (10, 0)):  # the first half, the second, the one not there
            changed = stats.copy()
            changed[k, 0] = v
            out.append(yolo_cache.unchanged(folders, packed_names, runs, changed))
        return out

    monkeypatch.setattr(dkio, "can_fork", lambda: True)
    assert answers() == [True, False, False, False]
    monkeypatch.setattr(dkio, "can_fork", lambda: False)
    assert answers() == [True, False, False, False]
    calls = []
    real = os.stat
    monkeypatch.setattr(os, "stat", lambda p, **k: calls.append(p) or real(p, **k))
    for share in (0, 0.3, 0.5, 1):
        calls.clear()
        assert yolo_cache.unchanged(folders, packed_names, runs, stats, share=share)
        assert calls == names  # each once, through its folder


def test_strings_packed_in_pieces_and_back():
    strings = ["a", "", "b/c", "\udcff.jpg", "é", "", "x" * 100]  # an undecodable name, empty ones
    for chunk in (1, 2, 3, 100):
        pieces = list(yolo_cache.packed(strings, chunk))
        assert len(pieces) == -(-len(strings) // chunk)
        assert yolo_cache.unpack(np.frombuffer(b"".join(pieces), np.uint8), len(strings)) == strings
    assert list(yolo_cache.packed([])) == [] and yolo_cache.unpack(np.zeros(0, np.uint8), 0) == []


def test_both_in_two_processes(monkeypatch):
    monkeypatch.setattr(dkio, "can_fork", lambda: True)
    pid = os.getpid()
    assert dkio.both(lambda: True, lambda: os.getpid() != pid)  # the second in a child
    assert not dkio.both(lambda: True, lambda: False)
    assert not dkio.both(lambda: False, lambda: True)
    assert not dkio.both(lambda: True, lambda: 1 / 0)  # a child that fails answers False
    monkeypatch.setattr(dkio, "can_fork", lambda: False)
    assert dkio.both(lambda: True, lambda: os.getpid() == pid)  # both here
    with pytest.raises(ZeroDivisionError):
        dkio.both(lambda: True, lambda: 1 / 0)


def test_no_cache_or_an_unwritable_one(tmp_path, monkeypatch):
    monkeypatch.setattr(yolo_cache, "RACY_NS", 0)
    y = _dataset(tmp_path / "d")
    monkeypatch.setenv("DETKIT_CACHE", "off")
    monkeypatch.setenv("DETKIT_CACHE_DIR", str(tmp_path / "c1"))
    assert load_yolo(y).num_annotations == 3 and not (tmp_path / "c1").exists()
    monkeypatch.delenv("DETKIT_CACHE")
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("DETKIT_CACHE_DIR", str(tmp_path / "file"))  # a file: nothing can be made under it
    assert load_yolo(y).num_annotations == 3
    monkeypatch.delenv("DETKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_yolo(y)
    assert len(_kept(tmp_path / "xdg" / "detkit" / "yolo")) == 1


def test_a_cache_file_is_whole_or_absent(tmp_path):
    w = yolo_cache._Writer(tmp_path / "c" / "read-x")
    w.add("a", np.arange(6, dtype=np.int32).reshape(2, 3))
    w.add("b", iter([b"ab", b"\0c"]))
    assert [p.name for p in (tmp_path / "c").iterdir()][0].startswith(".read-x")  # a temp file until closed
    w.close({"k": 1})
    arrays, doc = yolo_cache._read(tmp_path / "c" / "read-x")
    assert arrays["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and arrays["b"].tobytes() == b"ab\0c"
    assert doc == {"k": 1} and [p.name for p in (tmp_path / "c").iterdir()] == ["read-x"]
    w = yolo_cache._Writer(tmp_path / "c" / "read-y")
    w.add("a", np.zeros(3))
    w.drop()
    w.add("b", np.zeros(3))
    w.close({})
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["read-x"]


def test_a_read_that_fails_keeps_nothing(tmp_path, cache, monkeypatch):
    y = _dataset(tmp_path / "d")
    for p in (tmp_path / "d" / "images" / "train").iterdir():
        p.write_bytes(b"not an image")
    with pytest.raises(InputError, match="none of the 3 images could be read"):
        load_yolo(y)
    assert _kept(cache) == [] and not list(cache.glob(".*"))
    for p in (tmp_path / "d" / "images" / "train").iterdir():
        p.unlink()
    _dataset(tmp_path / "d")
    real = yolo_cache._Writer.add

    class Full:
        def tell(self):
            return 0

        def write(self, data):
            raise OSError(28, "No space left on device")

    def full(self, name, a):  # the disk fills up while the result is written
        if name == "bbox":
            self._f = Full()
        real(self, name, a)

    monkeypatch.setattr(yolo_cache._Writer, "add", full)
    assert load_yolo(y).num_annotations == 3
    assert _kept(cache) == [] and not list(cache.glob(".*"))
