"""Training-curve grouping and plotting from a per-epoch CSV."""

from __future__ import annotations

import math

from detkit.report.curves import finite_points, group_columns, plot_curves, read_curves


def test_columns_grouped_by_name(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,train/loss,loss_obj,noobj,val/mAP50,val_acc,top5,lr,lr_pg1,seconds,images_per_s,"
        "seen_images,grad_norm,note\n"
        "1,2.0,0.5,0.1,0.1,0.3,0.9,0.01,0.02,3.5,200,16,1.5,warmup\n"
        "2,1.0,,0.1,0.2,0.4,1.0,0.005,0.01,3.4,210,32,1.2,\n"
    )
    cols = read_curves(csv)
    assert "note" not in cols  # text-only column dropped
    assert cols["loss_obj"][0] == 0.5 and math.isnan(cols["loss_obj"][1])  # empty cell -> NaN
    x, groups = group_columns(cols)
    assert x == "epoch"
    assert groups == {
        "loss": ["train/loss", "loss_obj", "noobj"],
        "metric": ["val/mAP50", "val_acc", "top5"],
        "lr": ["lr", "lr_pg1"],
        "speed": ["seconds", "images_per_s"],
        "other": ["grad_norm"],
    }


def test_one_png_per_group(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("train_loss,val_acc\n1.0,0.5\n0.5,0.75\n")  # no epoch column: x is 1..n
    figures = plot_curves(csv)
    assert [t for t, _ in figures] == ["Loss", "Metrics"]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for _, png in figures)


def test_sparse_validation_column_is_drawn_through_its_points(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,mAP\n1,\n2,0.1\n3,\n4,0.3\n")  # validated every 2 epochs
    before = plt.get_fignums()
    figures = plot_curves(csv)
    assert [t for t, _ in figures] == ["Metrics"] and plt.get_fignums() == before  # figures closed
    cols = read_curves(csv)
    assert finite_points(cols["epoch"], cols["mAP"]) == ([2.0, 4.0], [0.1, 0.3])


def test_empty_csv_gives_no_figures(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,loss\n")
    assert plot_curves(csv) == []
