"""Atomic output and JSON helpers."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from detkit.io import atomic_path, atomic_write, sha256_file, to_json, write_json


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_atomic_files_get_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt") as f:
            f.write("x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(mask)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_json_is_strict_and_numpy_safe(tmp_path):
    doc = {"a": np.int64(3), "b": np.array([1.5, np.nan]), "c": float("inf"), "d": tmp_path}
    assert json.loads(to_json(doc)) == {"a": 3, "b": [1.5, None], "c": None, "d": str(tmp_path)}
    p = write_json(tmp_path / "x.json", {"k": 1})
    assert json.loads(p.read_text()) == {"k": 1}
    assert sha256_file(p) == sha256_file(p) and len(sha256_file(p)) == 64


def test_check_out_folder_refuses_a_file(tmp_path):
    from detkit.errors import InputError
    from detkit.io import check_out_folder

    assert check_out_folder(tmp_path) == tmp_path and check_out_folder(tmp_path / "new") == tmp_path / "new"
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(InputError) as exc:
        check_out_folder(f, "a run folder")
    assert (
        str(exc.value) == f"{f}: exists and is not a folder; give a run folder"
    )  # the library names no flag
    assert exc.value.cli_message() == f"{f}: exists and is not a folder; give a run folder to --out"


def test_staged_folder_renames_on_success_removes_on_error_and_sweeps_dead_leftovers(tmp_path):
    import subprocess
    import sys

    from detkit.io import staged_folder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".out.tmp-{dead.pid}" / "labels").mkdir(parents=True)  # a killed run's leftover
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither out, nor our temp, nor the leftover
    with staged_folder(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (
        tmp_path / "out" / "a.txt"
    ).read_text() == "whole"
