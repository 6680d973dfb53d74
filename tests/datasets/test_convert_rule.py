"""The one convert output rule: file formats (coco, cvat, labelstudio) write OUT as the
file when OUT ends in their suffix, else a new folder of annotations.* (or <split>.* per split); folder
formats (yolo, voc, labelme) always write a folder; an OUT that contradicts the rule is refused in one
line; ``--help`` states it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.datasets.formats.write import OUTPUT_RULE
from tests.datasets.test_layouts import ultralytics_set


def test_a_coco_out_without_json_is_a_folder_not_a_file_named_out(cli, shapes_dir, tmp_path):
    code, _, err = cli("coco", "convert", shapes_dir / "instances.json", tmp_path / "OUT", "--to", "coco")
    assert code == 0, err
    assert (tmp_path / "OUT").is_dir()  # the annotations, and the summary.json detkit report reads
    assert sorted(p.name for p in (tmp_path / "OUT").iterdir()) == ["annotations.json", "summary.json"]
    doc = json.loads((tmp_path / "OUT" / "annotations.json").read_text())
    assert len(doc["images"]) == 16
    assert f"wrote {tmp_path / 'OUT' / 'annotations.json'} (coco)" in err


@pytest.mark.parametrize("to,out", [("coco", "c.json"), ("cvat", "c.xml"), ("labelstudio", "c.json")])
def test_a_file_suffix_is_that_file(cli, shapes_dir, tmp_path, to, out):
    assert cli("coco", "convert", shapes_dir / "instances.json", tmp_path / out, "--to", to)[0] == 0
    assert (tmp_path / out).is_file()


@pytest.mark.parametrize(
    "to,out,what",
    [
        ("coco", "c.xml", "ends in .xml, but coco writes a .json file or a folder"),
        ("cvat", "c.json", "ends in .json, but cvat writes a .xml file or a folder"),
        ("yolo", "y.json", "ends in .json, but yolo writes a folder"),
        ("labelme", "l.json", "ends in .json, but labelme writes a folder"),
        ("voc", "v.yaml", "ends in .yaml, but voc writes a folder"),
    ],
)
def test_an_out_that_contradicts_the_rule_is_refused_in_one_line(cli, shapes_dir, tmp_path, to, out, what):
    code, _, err = cli("coco", "convert", shapes_dir / "instances.json", tmp_path / out, "--to", to)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / out}: {what}" in err
    assert not (tmp_path / out).exists()


def test_splits_give_one_file_each_in_a_folder_and_a_file_is_refused(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    assert cli("coco", "convert", y, tmp_path / "cv", "--to", "cvat")[0] == 0
    assert sorted(p.name for p in (tmp_path / "cv").iterdir()) == ["summary.json", "train.xml", "val.xml"]
    assert cli("coco", "convert", y, tmp_path / "ls", "--to", "labelstudio")[0] == 0
    assert sorted(p.name for p in (tmp_path / "ls").iterdir()) == ["summary.json", "train.json", "val.json"]
    code, _, err = cli("coco", "convert", y, tmp_path / "one.xml", "--to", "cvat")
    assert code == 2 and "name an output folder for one cvat output per split" in err
    assert f"{tmp_path / 'one'}/train.xml" in err


def test_help_states_the_rule(cli):
    code, out, _ = cli("coco", "convert", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert " ".join(OUTPUT_RULE.split()) in text


def test_the_operations_follow_the_same_rule(cli, shapes_dir, tmp_path):
    src = shapes_dir / "instances.json"
    code, _, err = cli("coco", "sample", src, tmp_path / "s.xml", "--n", "2")
    assert code == 2 and "ends in .xml, but coco writes a .json file or a folder" in err
    code, _, err = cli("coco", "split", src, tmp_path / "p.json", "--ratios", "0.5,0.5")
    assert code == 2 and "2 splits are written one coco file each, into a folder" in err
    assert cli("coco", "sample", src, tmp_path / "s", "--n", "2")[0] == 0
    assert (tmp_path / "s" / "annotations.json").is_file()


@pytest.mark.parametrize("to", ["coco", "cvat", "labelstudio", "labelme"])
def test_a_folder_of_split_outputs_reads_back_with_its_splits(cli, tmp_path, to):
    """convert's OUT/<split>.* folder is itself a source: every image and box, in its split."""
    from detkit.datasets.load import declared_splits, detect_format, load_dataset

    y = ultralytics_set(tmp_path / "src")
    src = load_dataset(y)
    assert cli("coco", "convert", y, tmp_path / "out", "--to", to)[0] == 0
    assert detect_format(tmp_path / "out") == to
    assert declared_splits(tmp_path / "out") == ["train", "val"]  # what yolo train --data OUT trains on
    back = load_dataset(tmp_path / "out")
    assert back.format == to and back.split_names() == src.split_names() == ["train", "val"]
    for name in ("train", "val"):
        a, b = src.select_split(name), back.select_split(name)
        assert sorted(f.split("/")[-1] for f in b.file_name) == sorted(f.split("/")[-1] for f in a.file_name)
        if to in ("coco", "labelme"):  # these record (or sit beside) their images
            assert all((Path(back.image_root) / f).is_file() for f in b.file_name)
        assert b.num_annotations == a.num_annotations
        assert list(b.cat_name) == list(a.cat_name)
    assert load_dataset(tmp_path / "out", split="val").num_images == src.select_split("val").num_images
    code, out, err = cli("coco", "inspect", tmp_path / "out", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["images"] == src.num_images


def test_a_split_file_of_another_format_among_them_is_named(tmp_path):
    from detkit.datasets.load import load_dataset
    from detkit.errors import InputError

    (tmp_path / "train.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "val.json").write_text('[{"id": 1, "data": {"image": "a.jpg"}, "annotations": []}]')
    with pytest.raises(InputError, match=r"val\.json: not coco like the other split files"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    "to,record",
    [
        ("coco", "train.json $.annotations[0]"),
        ("cvat", 'train.xml <image name="a.jpg"> <box> #1'),
        ("labelstudio", "train.json $[0].annotations[0].result[0]"),
        ("labelme", "train/a.json shapes[0]"),
    ],
)
def test_validate_of_a_split_folder_names_the_split_file_and_its_record(cli_json, tmp_path, to, record):
    from detkit.datasets.load import load_dataset

    y = ultralytics_set(tmp_path / "src")
    lab = tmp_path / "src" / "ds" / "labels" / "train" / "a.txt"
    lab.write_text("0 0.5 0.5 0 0.5\n" + lab.read_text().split("\n", 1)[1])  # a's first box: no width
    n = load_dataset(y).num_annotations
    cli_json("coco", "convert", y, tmp_path / "out", "--to", to)
    doc = cli_json("coco", "validate", tmp_path / "out", expect=1)
    assert doc["annotations"] == n
    (finding,) = [f for f in doc["findings"] if f["code"] == "bbox.non_positive_size"]
    assert finding["count"] == 1 and finding["examples"][0]["record"].startswith(record)


@pytest.mark.parametrize("to", ["coco", "cvat", "labelstudio"])
def test_split_files_of_the_same_images_read_back_counted_once(cli, tmp_path, to):
    """train and val the same folder (coco128.yaml): convert writes both files; read back, each image is
    one row in train+val, as the yaml itself is read, and the overlap is said once."""
    from detkit.datasets.load import load_dataset

    y = ultralytics_set(tmp_path / "src")
    y.write_text(y.read_text().replace("val: val.txt", "val: images/train"))
    src = load_dataset(y)
    assert (src.num_images, src.num_annotations) == (3, 3)
    assert cli("coco", "convert", y, tmp_path / "out", "--to", to)[0] == 0
    back = load_dataset(tmp_path / "out")
    assert (back.num_images, back.num_annotations) == (3, 3)
    assert sorted(back.split.tolist()) == ["train+val"] * 3 and back.select_split("val").num_images == 3
    code, out, err = cli("coco", "inspect", tmp_path / "out", "--json")
    assert code == 0 and json.loads(out)["counts"]["images"] == 3
    assert err.count("train and val are the same 3 images: validation measures training fit") == 1
