"""Text from data is never read as markup: a file named ``a:train:[bold]b.jpg`` and classes ``[person]``
and ``car:train:`` print as they are through every command that shows names (rich would drop
``[bold]`` as a style, drop ``[person]`` as an unknown tag and turn ``:train:`` into an emoji)."""

from __future__ import annotations

import json

import pytest

FILE = "a:train:[bold]b.jpg"
PERSON, CAR = "[person]", "car:train:"


@pytest.fixture
def gt(tmp_path):
    images = [
        {"id": i, "file_name": FILE if i == 1 else f"i{i}.jpg", "width": 100, "height": 100}
        for i in range(1, 9)
    ]
    anns = [
        {
            "id": i,
            "image_id": i,
            "category_id": 1 + i % 2,
            "bbox": [10, 10, 30 + i, 30],
            "area": 900,
            "iscrowd": 0,
        }
        for i in range(1, 9)
    ]
    # a box past the right edge of FILE: validate names the file in its example
    anns.append(
        {"id": 9, "image_id": 1, "category_id": 2, "bbox": [80, 80, 40, 40], "area": 1600, "iscrowd": 0}
    )
    cats = [{"id": 1, "name": PERSON}, {"id": 2, "name": CAR}]
    p = tmp_path / "gt.json"
    p.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return p


def _assert_literal(text: str, *needles: str) -> None:
    assert "\U0001f68b" not in text  # the train emoji
    for n in needles:
        assert n in text, f"{n!r} not printed as it is in:\n{text}"


def test_console_has_emoji_codes_off(capsys):
    from detkit.console import esc, info, out, warn

    info(f"skipped {FILE}")
    warn(f"class {PERSON}")
    info(f"[bold]{esc(FILE)}[/bold]", markup=True)
    out.print(f"{esc(CAR)} {esc(PERSON)}")
    cap = capsys.readouterr()
    assert cap.err == f"skipped {FILE}\nwarning: class {PERSON}\n{FILE}\n"
    assert cap.out == f"{CAR} {PERSON}\n"


@pytest.mark.parametrize(
    ("command", "needles"),
    [
        (["coco", "inspect"], []),
        (["coco", "validate"], [FILE]),
        (["coco", "classes"], [PERSON, CAR]),
        (["coco", "eval"], [PERSON, CAR]),
        (["coco", "split"], [PERSON, CAR]),
    ],
)
def test_commands_print_names_as_they_are(cli, gt, tmp_path, command, needles):
    args = [*command, gt]
    if command[1] == "eval":
        pred = tmp_path / "pred.json"
        pred.write_text(
            json.dumps(
                [
                    {"image_id": 1, "category_id": 1, "bbox": [10, 10, 31, 30], "score": 0.9},
                    {"image_id": 2, "category_id": 1, "bbox": [10, 10, 32, 30], "score": 0.8},
                ]
            )
        )
        args.append(pred)
    if command[1] == "split":
        args.append(tmp_path / "split")
    code, out, err = cli(*args)
    assert code in (0, 1), err
    _assert_literal(out + err, *needles)
    assert str(gt) in out + err  # the path, printed in bold, keeps its text


def test_yolo_eval_table_prints_names_as_they_are(capsys):
    from detkit.yolo.cli import _print_eval

    m = {"mAP": 0.5, "mAP50": 0.6, "mAP75": 0.4, "detections": 3, "images": 2}
    rows = [{"category_id": 0, "name": PERSON, "gt": 2, "AP": 0.5, "AP50": 0.6}]
    rows.append({"category_id": 1, "name": CAR, "gt": 1, "AP": None, "AP50": None})
    _print_eval(m, rows)
    _assert_literal(capsys.readouterr().out, PERSON, CAR)
