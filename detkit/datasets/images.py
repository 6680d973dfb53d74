"""Image files behind a dataset: header probes, file-vs-annotation checks and split leakage.

Header probe (:func:`probe_image`): the size from the header (PIL opens lazily, no pixel decode), plus
the end of the file: a JPEG must end with its EOI marker ``FF D9`` and a PNG with its ``IEND`` chunk —
a copy cut short keeps a valid header, so the tail is what tells it apart (ultralytics checks the same
two bytes). Cost: one open and one 256-byte read per image.

Leakage (:func:`find_leaks`) compares every pair of splits:

    exact   same resolved path, or same size and same BLAKE2b of the bytes (only files whose size
            collides with a file of another split are read)
    near    64-bit perceptual hash (pHash): the image decoded at 1/8 scale (JPEG DCT scaling), grey,
            32 x 32, 2-D DCT, the 8 x 8 lowest frequencies thresholded at their median; two images are
            near-duplicates when the Hamming distance of their hashes is <= ``max_distance`` bits.
            All cross-split pairs are compared (blocks of XOR + popcount), O(N_a * N_b / 64) words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.datasets.formats.readers import problem
from detkit.datasets.model import MEMBER_SEP
from detkit.datasets.paths import source_path
from detkit.errors import InputError

NEAR_DISTANCE = 6  # bits of 64: re-encoded / resized / lightly edited copies are within 0..4
_TAIL = 256


def probe_image(path: Path) -> tuple[int, int]:
    """(width, height) from the header; raise (``image.empty`` / ``image.corrupt``) for a bad file."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise problem(path, None, f"cannot read ({exc.strerror or exc})", "image.corrupt") from None
    if size == 0:
        raise problem(path, None, "empty image file (0 bytes)", "image.empty")
    try:
        with Image.open(path) as im:
            w, h, fmt = im.size[0], im.size[1], im.format
    except Image.DecompressionBombError:  # a header claiming e.g. 60000 x 60000 pixels
        raise problem(path, None, "image header claims too many pixels to decode", "image.corrupt") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise problem(
            path, None, f"not a readable image ({exc.__class__.__name__})", "image.corrupt"
        ) from None
    if fmt in ("JPEG", "MPO", "PNG"):
        with open(path, "rb") as f:
            f.seek(max(0, size - _TAIL))
            tail = f.read()
        marker = b"IEND" if fmt == "PNG" else b"\xff\xd9"
        if marker not in tail:
            raise problem(path, None, f"truncated {fmt} (no end marker; {size:,} bytes)", "image.corrupt")
    return int(w), int(h)


def image_paths(file_name: Sequence[str], image_root: str | Path | None) -> list[Path]:
    """Each image's path: :func:`detkit.datasets.paths.source_path` (``a\\b.jpg`` is ``root/a/b.jpg``; an
    absolute file_name stays as it is)."""
    root = Path(image_root) if image_root is not None else Path(".")
    return [source_path(root, str(f)) for f in file_name]


@dataclass
class FileCheck:
    """Rows of a COCO image table whose file is missing, unreadable, or of another size than declared."""

    missing: list[int]
    unreadable: list[tuple[int, str, str]]  # (row, code, what)
    size_mismatch: list[tuple[int, int, int]]  # (row, header width, header height)


def check_image_files(paths: Sequence[Path], width: np.ndarray, height: np.ndarray) -> FileCheck:
    """Probe each file: exists, readable, header size equal to the declared width x height."""

    res = FileCheck([], [], [])
    for i, p in enumerate(paths):
        if not p.is_file():
            res.missing.append(i)
            continue
        try:
            w, h = probe_image(p)
        except InputError as err:
            res.unreadable.append((i, err.code or "image.corrupt", err.what))
            continue
        if (w, h) != (width[i], height[i]):
            res.size_mismatch.append((i, w, h))
    return res


# ---- leakage -----------------------------------------------------------------------------------------
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)
_BITS = np.uint64(1) << np.arange(64, dtype=np.uint64)


def phash(path: Path) -> int | None:
    """The 64-bit perceptual hash of an image (None when it cannot be decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("L", (64, 64))  # JPEG: decode at 1/2..1/8 scale straight from the DCT
            g = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
    except Exception:  # noqa: BLE001 - any undecodable file simply has no hash
        return None
    low = (_DCT32 @ g @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low)
    return int((_BITS[bits]).sum(dtype=np.uint64))


def file_digest(path: Path) -> bytes | None:
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return None


@dataclass
class Leak:
    """Two images in different splits that are the same picture."""

    a: int  # row in the image table
    b: int
    kind: str  # "exact" or "near"
    distance: int  # Hamming distance of the hashes (0 for exact)
    note: str


def find_leaks(
    paths: Sequence[Path],
    split: np.ndarray,
    max_distance: int = NEAR_DISTANCE,
    near: bool = True,
    tick: Callable[[int], None] | None = None,
) -> list[Leak]:
    """Images shared by two splits: exact copies (same file or bytes) and near-duplicates (pHash).

    Args:
        paths: each image's file (missing files are ignored).
        split: each image's split name.
        max_distance: Hamming distance (bits of 64) up to which two hashes count as near-duplicates.
        near: also look for near-duplicates (decodes every image at reduced scale).
        tick: called with 1 per hashed image (a progress bar).
    """
    split = np.asarray(split, dtype=object)
    exists = np.array([p.is_file() for p in paths], dtype=bool)
    leaks = _exact_leaks(paths, split, exists)
    if near:
        exact_pairs = {(lk.a, lk.b) for lk in leaks}
        leaks += [
            lk
            for lk in _near_leaks(paths, split, exists, max_distance, tick)
            if (lk.a, lk.b) not in exact_pairs
        ]
    return leaks


def _exact_leaks(paths: Sequence[Path], split: np.ndarray, exists: np.ndarray) -> list[Leak]:
    groups: dict[object, list[int]] = {}
    for i in np.flatnonzero(exists):
        groups.setdefault(("path", str(paths[i].resolve())), []).append(int(i))
    leaks = _cross_pairs(groups, split, "exact", "same file")
    by_size: dict[int, list[int]] = {}
    firsts = [rows[0] for rows in groups.values()]  # one row per distinct file
    for i in firsts:
        by_size.setdefault(paths[i].stat().st_size, []).append(i)
    digests: dict[object, list[int]] = {}
    for rows in by_size.values():
        if len(rows) > 1 and len({split[i] for i in rows}) > 1:
            for i in rows:
                d = file_digest(paths[i])
                if d is not None:
                    digests.setdefault(d, []).append(i)
    leaks += _cross_pairs(digests, split, "exact", "same bytes")
    return leaks


def _cross_pairs(groups: dict[object, list[int]], split: np.ndarray, kind: str, note: str) -> list[Leak]:
    out = []
    for rows in groups.values():
        for x in range(len(rows)):
            for y in range(x + 1, len(rows)):
                a, b = rows[x], rows[y]
                if split[a] != split[b]:
                    out.append(Leak(min(a, b), max(a, b), kind, 0, note))
    return out


def _near_leaks(paths, split, exists, max_distance: int, tick) -> list[Leak]:
    hashes = np.zeros(len(paths), dtype=np.uint64)
    ok = np.zeros(len(paths), dtype=bool)
    done: dict[str, int | None] = {}
    for i in np.flatnonzero(exists):
        key = str(paths[i])
        if key not in done:
            done[key] = phash(paths[i])
        h = done[key]
        if h is not None:
            hashes[i], ok[i] = np.uint64(h), True
        if tick is not None:
            tick(1)
    names = sorted({str(s) for s in split[ok]})
    out: list[Leak] = []
    for x, sa in enumerate(names):
        ra = np.flatnonzero(ok & (split == sa))
        for sb in names[x + 1 :]:
            rb = np.flatnonzero(ok & (split == sb))
            step = max(1, 4_000_000 // max(len(rb), 1))  # ~4M pairs (32 MB of XORs) per block
            for start in range(0, len(ra), step):
                blk = ra[start : start + step]
                dist = np.bitwise_count(hashes[blk][:, None] ^ hashes[rb][None, :])  # (blk, |rb|) uint8
                ia, ib = np.nonzero(dist <= max_distance)
                for p, q in zip(ia, ib):
                    a, b = int(blk[p]), int(rb[q])
                    if str(paths[a].resolve()) == str(paths[b].resolve()):
                        continue  # the same file: already an exact leak
                    d = int(dist[p, q])
                    out.append(Leak(min(a, b), max(a, b), "near", d, f"pHash distance {d}"))
    return out


# ---- validate's hook ------------------------------------------------------------------------------------
def check_sources(ds, fnd, images: str | Path | None = None, leakage: bool = True) -> None:
    """The checks of ``validate`` that read image files: a COCO json's listed images against their files
    (when any is found, or ``images`` names the folder) and leakage between splits.

    Args:
        ds: the loaded :class:`~detkit.datasets.model.Dataset`.
        fnd: the :class:`~detkit.datasets.checks.findings.Findings` to add to.
        images: the image folder (``--images``); ``ds.image_root`` when None.
        leakage: look for images shared by two splits (decodes every image at reduced scale).
    """
    root = images if images is not None else ds.image_root
    paths = image_paths(ds.file_name, root) if root is not None else None
    if (
        paths is not None
        and ds.format == "coco"
        and (images is not None or any(p.is_file() for p in paths[:1000]))
    ):
        res = check_image_files(paths, ds.width, ds.height)
        rec = lambda r: f"image {ds.file_name[r]}"
        iid = lambda r: int(ds.image_id[r])
        fnd.add_rows("image.missing_file", res.missing, rec, iid, lambda r: f"no file {paths[r]}")
        what = {r: w for r, _, w in res.unreadable}
        for code in ("image.empty", "image.corrupt"):
            rows = [r for r, c, _ in res.unreadable if c == code]
            fnd.add_rows(code, rows, rec, iid, lambda r: what[r])
        size = {r: (w, h) for r, w, h in res.size_mismatch}
        fnd.add_rows(
            "image.size_mismatch",
            [r for r, _, _ in res.size_mismatch],
            rec,
            iid,
            lambda r: f"declared {ds.width[r]:g}x{ds.height[r]:g}, file {size[r][0]}x{size[r][1]}",
        )
    if leakage and ds.split is not None:  # one image that several splits name (a data.yaml's train = val)
        for r in np.flatnonzero([MEMBER_SEP in str(s) for s in ds.split.tolist()]):
            fnd.add("split.leak_exact", f"{ds.split[r]}:{ds.file_name[r]}", note="same file")
    if leakage and paths is not None and ds.split is not None and len(set(ds.split.tolist())) > 1:
        leaks = find_leaks(paths, ds.split)
        for kind in ("exact", "near"):
            got = [lk for lk in leaks if lk.kind == kind]
            code = f"split.leak_{kind}"
            for lk in got:
                pair = f"{ds.split[lk.a]}:{ds.file_name[lk.a]} = {ds.split[lk.b]}:{ds.file_name[lk.b]}"
                fnd.add(code, pair, note=lk.note)
            if got and kind == "near":
                fnd.get(code).details.update({"max_distance_bits": NEAR_DISTANCE, "hash": "pHash 64-bit"})
