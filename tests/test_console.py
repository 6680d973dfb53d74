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
