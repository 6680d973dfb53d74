from __future__ import annotations

from detkit.console import info, warn


def test_messages_print_paths_with_brackets_as_they_are(capsys):
    # rich would read "[/v2]" as a closing tag (MarkupError) and drop "[v2]" as an unknown style
    info("wrote runs/r[/v2] and runs/r[v2]")
    warn("skipped images/[bad].jpg")
    assert capsys.readouterr().err == "wrote runs/r[/v2] and runs/r[v2]\nwarning: skipped images/[bad].jpg\n"


def test_markup_only_when_asked(capsys):
    info("[bold]step[/bold] ok", markup=True)
    assert capsys.readouterr().err == "step ok\n"


def test_warn_and_info_name_flags_only_inside_a_cli_command(capsys):
    from detkit.console import cli_wording

    flags = {"exist_ok=True": "--exist-ok"}
    warn("r: exist_ok=True: deleted last.pt", flags=flags)  # a Python caller reads the keyword argument
    with cli_wording():
        warn("r: exist_ok=True: deleted last.pt", flags=flags)
        with cli_wording():  # nested (the demo runs commands inside a command): the outer state comes back
            info("start over with exist_ok=True", flags=flags)
        info("start over with exist_ok=True", flags=flags)
        info("no flags, no change: exist_ok=True")
    info("start over with exist_ok=True", flags=flags)
    assert capsys.readouterr().err.splitlines() == [
        "warning: r: exist_ok=True: deleted last.pt",
        "warning: r: --exist-ok: deleted last.pt",
        "start over with --exist-ok",
        "start over with --exist-ok",
        "no flags, no change: exist_ok=True",
        "start over with exist_ok=True",
    ]


def test_the_cli_runs_its_commands_with_cli_wording(monkeypatch, cli, tmp_path, capsys):
    import detkit.report.cli as report_cli

    def fake_report(dirs, out, title):  # a library function that warns, called by `detkit report`
        warn("no summary in runs/; exist_ok=True started over", flags={"exist_ok=True": "--exist-ok"})
        return {"report": str(out), "format": "html", "assets": None, "sections": []}

    monkeypatch.setattr(report_cli, "write_report", fake_report)
    code, out, err = cli("report", tmp_path, "-o", tmp_path / "r.html")
    assert code == 0 and err == "warning: no summary in runs/; --exist-ok started over\n"
    fake_report([], tmp_path / "r.html", "")  # called from Python after the command: the library's words
    assert capsys.readouterr().err == "warning: no summary in runs/; exist_ok=True started over\n"
