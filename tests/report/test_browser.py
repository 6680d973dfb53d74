"""The HTML report renders in a real headless browser (Debian's chromium), and the page is not blank."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from detkit.report.render import write_report


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_html_renders_in_headless_chromium(fake_runs, tmp_path):
    import matplotlib.image as mpimg

    html = tmp_path / "report.html"
    write_report([fake_runs], html)
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        html.as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1200)
    assert img.std() > 0.05  # a blank (white) or failed page has almost no variance
    # the dark header band and the white section cards are both there
    assert img[:40].mean() < 0.3 and (img > 0.99).all(axis=2).mean() > 0.3
