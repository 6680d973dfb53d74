"""`detkit coco draw`: a box's edge reads back in its class colour (contact sheet exactly, JPEG nearly),
--findings puts the flawed images first, --images / --classes choose, missing files are grey and counted,
and `detkit report` shows the contact sheet."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from PIL import Image

from detkit.datasets.load import load_dataset
from detkit.datasets.ops.draw import PALETTE, draw_run
from detkit.datasets.ops.source import Source
from detkit.errors import DetkitError
from tests.datasets.ops_fixtures import write_coco, write_images

RGB = [tuple(int(h[i : i + 2], 16) for i in (0, 2, 4)) for h in PALETTE]


@pytest.fixture
def drawn_set(tmp_path):
    """Three white 200x100 images: a dog box, a cat box past the right edge, and two identical dog boxes."""
    write_images(tmp_path / "images", ["a.png", "b.png", "c.png"], size=(200, 100))
    return write_coco(
        tmp_path / "ann.json",
        [(1, "a.png", 200, 100), (2, "b.png", 200, 100), (3, "c.png", 200, 100)],
        [
            (1, 1, 4, 20, 30, 80, 40),
            (2, 2, 9, 150, 10, 80, 20),
            (3, 3, 4, 5, 5, 30, 30),
            (4, 3, 4, 5, 5, 30, 30),
        ],
        [(9, "cat"), (4, "dog")],
    )


def test_box_edge_pixels_are_the_class_colour(cli_json, drawn_set, tmp_path):
    doc = cli_json("coco", "draw", drawn_set, tmp_path / "out", "--images", "a.png")
    assert doc["drawn"] == 1 and doc["boxes"] == 1 and doc["missing_images"] == 0
    dog = RGB[0]  # dog has the smaller id (4): first in id order, first palette colour
    item = doc["images"][0]
    # the full-size JPEG: the left edge at x = 20, halfway down the box; inside the box stays white
    jpeg = np.asarray(Image.open(tmp_path / "out" / item["jpeg"]).convert("RGB")).astype(int)
    assert np.abs(jpeg[50, 20] - dog).max() <= 40
    assert np.abs(jpeg[50, 60] - (255, 255, 255)).max() <= 10
    # the contact sheet (PNG): the same edge at the tile's offset and scale, exactly the colour
    sheet = np.asarray(Image.open(tmp_path / "out" / "contact_sheet.png").convert("RGB"))
    x0, y0, s = item["tile"]
    assert tuple(sheet[round(y0 + 50 * s), round(x0 + 20 * s)]) == dog
    assert tuple(sheet[round(y0 + 50 * s), round(x0 + 60 * s)]) == (255, 255, 255)


def test_findings_come_first_with_their_codes(cli_json, drawn_set, tmp_path):
    doc = cli_json("coco", "draw", drawn_set, tmp_path / "out", "--findings", "--n", "3")
    assert [d["file_name"] for d in doc["images"]][:2] in (["b.png", "c.png"], ["c.png", "b.png"])
    codes = {d["file_name"]: d["findings"] for d in doc["images"]}
    assert codes == {"a.png": [], "b.png": ["bbox.out_of_bounds"], "c.png": ["annotation.duplicate_box"]}
    assert doc["findings_by_code"] == {"bbox.out_of_bounds": 1, "annotation.duplicate_box": 1}
    assert doc["with_findings"] == 2


def test_classes_only_and_missing_images(cli, cli_json, drawn_set, tmp_path):
    doc = cli_json("coco", "draw", drawn_set, tmp_path / "cats", "--classes", "cat")
    assert [d["file_name"] for d in doc["images"]] == ["b.png"] and doc["boxes"] == 1
    (tmp_path / "images" / "a.png").unlink()
    code, _, err = cli("coco", "draw", drawn_set, tmp_path / "grey", "--images", "a")
    assert code == 0 and "not found" in err
    summary = json.loads((tmp_path / "grey" / "summary.json").read_text())
    assert summary["metrics"]["missing_images"] == 1
    grey = np.asarray(
        Image.open(tmp_path / "grey" / summary["galleries"]["images"][0]).convert("RGB")
    ).astype(int)
    assert np.abs(grey[95, 195] - 128).max() <= 10  # a grey canvas of the declared size
    assert grey.shape[:2] == (100, 200)


def test_report_shows_the_contact_sheet(cli, drawn_set, tmp_path):
    code, _, _ = cli("coco", "draw", drawn_set, tmp_path / "run", "--n", "2")
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["kind"] == "coco.draw" and summary["plots"] == {"contact_sheet": "contact_sheet.png"}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["seed"] == 0
    code, _, err = cli("report", tmp_path / "run", "-o", tmp_path / "report.html")
    assert code == 0, err
    html = (tmp_path / "report.html").read_text()
    assert "contact sheet" in html  # the figure's name
    sheet = base64.b64encode((tmp_path / "run" / "contact_sheet.png").read_bytes()).decode()
    assert sheet in html  # the PNG itself, inline


def test_draw_refuses_a_non_empty_folder(cli, drawn_set, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    code, out, err = cli("coco", "draw", drawn_set, tmp_path / "busy")
    assert code == 2 and out == "" and "not an empty folder" in err


def test_nothing_to_draw_is_exit_2(cli, drawn_set, tmp_path):
    code, out, err = cli("coco", "draw", drawn_set, tmp_path / "o", "--images", "nope.png")
    assert code == 2 and out == "" and not (tmp_path / "o").exists()
    line = "nothing to draw: none of the images named in --images is in the dataset"
    assert err == f"detkit: error: {drawn_set}: {line}\n"
    with pytest.raises(DetkitError) as e:  # the Python API's words name the argument, not the flag
        draw_run(Source(drawn_set, load_dataset(drawn_set)), tmp_path / "o", names=["nope.png"])
    assert str(e.value) == f"{drawn_set}: nothing to draw: none of the images named (names) is in the dataset"
