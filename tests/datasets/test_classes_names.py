"""`coco classes`: the terminal table has the "images containing the class" column that
--help promises (with and without splits), and ``--names FILE`` (one name per line, or a data.yaml) names
the classes of YOLO labels that have none."""

from __future__ import annotations

import pytest

from tests.datasets.test_layouts import ultralytics_set, write_yolo_split


@pytest.fixture
def bare(tmp_path):
    """images/ + labels/ without names: a has class 0 once and class 2 twice, b class 2 once."""
    write_yolo_split(
        tmp_path / "bare" / "images",
        tmp_path / "bare" / "labels",
        {"a": "0 .5 .5 .2 .2\n2 .3 .3 .1 .1\n2 .6 .6 .1 .1\n", "b": "2 .5 .5 .2 .2\n"},
    )
    return tmp_path / "bare"


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in ln.split("│")] for ln in out.splitlines() if "│" in ln]


def test_the_terminal_table_has_the_images_column(cli, bare, tmp_path):
    code, out, _ = cli("coco", "classes", bare)
    assert code == 0
    header = [c.strip() for c in out.splitlines()[1].split("┃")]
    assert header == ["id", "name", "instances", "images", "share"]
    # class2: 3 boxes on 2 images; class0: 1 box on 1 image
    assert _rows(out)[:2] == [["2", "class2", "3", "2", "75.00%"], ["0", "class0", "1", "1", "25.00%"]]
    y = ultralytics_set(tmp_path / "ul")
    code, out, _ = cli("coco", "classes", y)
    header = [c.strip() for c in out.splitlines()[1].split("┃")]
    assert code == 0 and header[:5] == ["id", "name", "instances", "images", "share"]
    # cat: a and d, one box each (2 images); dog: two boxes on a and b (2 images)
    assert [r[:4] for r in _rows(out)] == [["0", "cat", "2", "2"], ["1", "dog", "2", "2"]]


@pytest.mark.parametrize("kind", ["txt", "yaml"])
def test_names_file_names_bare_yolo_classes(cli, cli_json, bare, tmp_path, kind):
    f = tmp_path / ("names.txt" if kind == "txt" else "data.yaml")
    f.write_text("cat\ndog\nbird\n" if kind == "txt" else "names: {0: cat, 1: dog, 2: bird}\n")
    doc = cli_json("coco", "classes", bare, "--names", f)
    assert [(r["id"], r["name"], r["instances"], r["images"]) for r in doc["classes"]] == [
        (2, "bird", 3, 2),
        (0, "cat", 1, 1),
        (1, "dog", 0, 0),
    ]
    assert cli_json("coco", "inspect", bare, "--names", f)["counts"]["categories"] == 3
    assert cli("coco", "convert", bare, tmp_path / "c.json", "--to", "coco", "--names", f)[0] == 0
    assert '"name":"bird"' in (tmp_path / "c.json").read_text().replace(" ", "")


def test_names_is_refused_where_files_name_their_classes(cli, shapes_dir, tmp_path):
    (tmp_path / "n.txt").write_text("a\n")
    code, _, err = cli("coco", "classes", shapes_dir / "instances.json", "--names", tmp_path / "n.txt")
    assert code == 2 and "--names" in err and "is coco" in err and len(err.strip().splitlines()) == 1
