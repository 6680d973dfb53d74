"""Bad options, foreign checkpoints and run-folder rules of `detkit classify`: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from detkit.classify.checkpoint import load_checkpoint
from detkit.classify.config import TrainConfig
from detkit.classify.train import build_optimizer
from detkit.errors import DetkitError


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "-1", "--lr must be positive"),
        ("--label-smoothing", "1.5", "--label-smoothing must be in [0, 1)"),
        ("--model", "vgg16", "--model must be one of resnet18, resnet34, resnet50"),
        ("--split", "1.5", "--split must be between 0 and 1"),
        ("--img-size", "99999", "--img-size must be 8..1024"),
        ("--val", "test", "--val must be split or official"),
    ],
)
def test_options_are_checked_before_any_data_is_read(tmp_path, cli, option, value, message):
    # the data folder does not exist: the option must be reported first, without a scan or decode
    code, out, err = cli(
        "classify", "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "r", option, value
    )
    assert (
        (code, out) == (2, "") and err.startswith(f"detkit: error: {message}, got ") and err.count("\n") == 1
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 8])
def test_one_cycle_runs_for_any_schedule_length_with_fixed_momentum(total):
    # torch's OneCycleLR divides by zero when pct_start * total_steps == 1 (4 steps at 0.25)
    cfg = TrainConfig(data="", out="o", lr=0.1).resolved()
    opt, sched = build_optimizer(nn.Linear(2, 2), cfg, total)
    lrs, momenta = [], []
    for _ in range(total):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
    assert all(0 < lr <= 0.1 for lr in lrs[:-1]) and momenta == [0.9] * total


def test_config_keeps_the_data_folder_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(data="tiny", out="r").resolved().data == str(tmp_path / "tiny")


def test_foreign_checkpoints_are_refused_by_name(tmp_path, cli):
    plain = tmp_path / "resnet18.pth"
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    code, _, err = cli("classify", "eval", plain, "--out", tmp_path / "e")
    assert code == 2 and err == (
        f"detkit: error: {plain}: not a detkit classify checkpoint (missing config, classes, names); "
        "plain weights go in --weights\n"
    )
    with pytest.raises(DetkitError) as e:  # the Python API names the option, the CLI (above) the flag
        load_checkpoint(plain)
    assert str(e.value).endswith("(missing config, classes, names); plain weights go in the weights option")
    code, _, err = cli("classify", "eval", text, "--out", tmp_path / "e")
    assert code == 2 and err == f"detkit: error: {text}: not a PyTorch checkpoint (torch.save file)\n"
    (tmp_path / "fake").mkdir()
    plain.rename(tmp_path / "fake" / "last.pt")
    code, _, err = cli("classify", "train", "--resume", tmp_path / "fake")
    assert code == 2 and "not a detkit classify checkpoint" in err and err.count("\n") == 1


@pytest.mark.slow
def test_run_folder_rules(trained_run, tmp_path, cli):
    code, _, err = cli("classify", "train", "--data", "x", "--out", trained_run)
    assert code == 2 and err == (
        f"detkit: error: {trained_run}: already holds a run (last.pt); "
        f"continue it with --resume {trained_run}, start over with --exist-ok, or pick another --out\n"
    )
    # --epochs fixes the one-cycle schedule: a different value cannot continue this run
    code, _, err = cli("classify", "train", "--resume", trained_run, "--epochs", "12", "--lr", "0.1")
    assert code == 2 and "leave out --epochs 12 (the run has 8)" in err and "--lr" not in err
    before = (trained_run / "last.pt").stat().st_mtime_ns
    code, _, err = cli("classify", "train", "--resume", trained_run, "--device", "cpu", "--json")
    assert code == 0 and "already trained 8 of 8 epochs; nothing to do" in err
    assert (trained_run / "last.pt").stat().st_mtime_ns == before
    # the run named by its last.pt, with --out naming its folder: the same run
    last = trained_run / "last.pt"
    code, _, err = cli("classify", "train", "--resume", last, "--out", trained_run, "--device", "cpu")
    assert code == 0 and "already trained 8 of 8 epochs; nothing to do" in err
    code, _, err = cli("classify", "train", "--resume", last, "--out", tmp_path / "other")
    assert code == 2 and "--resume continues in its own folder" in err
    file = tmp_path / "file"
    file.write_text("")
    for args in (("train", "--data", "x"), ("eval", trained_run / "best.pt")):
        code, _, err = cli("classify", *args, "--out", file)
        assert code == 2 and err.startswith(f"detkit: error: {file}: exists and is not a folder; give ")


def test_cam_layer_must_give_feature_maps(trained_run, tmp_path, cli):
    code, _, err = cli(
        "classify",
        "eval",
        trained_run / "best.pt",
        "--out",
        tmp_path / "e",
        "--cam-layer",
        "fc",
        "--gallery",
        "2",
        "--device",
        "cpu",
    )
    assert code == 2 and "cam_layer 'fc' gives (1, 5), not feature maps" in err
    assert not Path(tmp_path / "e" / "summary.json").exists()


def test_refused_data_leaves_no_run_folder(tmp_path, cli):
    """The data is read inside the run folder's block: a refused data set removes the folders the call
    made (runs/ and runs/r), and a folder that existed before is kept as it was."""
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=4, seed=1, size=16)
    for w in (root / "wnids.txt").read_text().split():
        (root / "train" / w / "images").rename(root / "train" / w / "imgs")
    code, out, err = cli(
        "classify", "train", "--data", root, "--out", tmp_path / "runs" / "r", "--device", "cpu"
    )
    assert code == 2 and out == "" and "none of the 2 classes in wnids.txt" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    (tmp_path / "mine").mkdir()
    code, _, _ = cli("classify", "train", "--data", root, "--out", tmp_path / "mine", "--device", "cpu")
    assert code == 2 and (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())
