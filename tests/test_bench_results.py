"""bench/RESULTS.md: each bench replaces its own section and leaves the others as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.results import HEADER, Results, replace_section


def test_a_section_is_appended_then_replaced_in_place() -> None:
    text = replace_section("", "soak", "## soak\nfirst")
    assert text.startswith(HEADER)
    text = replace_section(text, "defaults", "## defaults\ntable")
    text = replace_section(text, "soak", "## soak\nsecond")
    assert "first" not in text and text.count("## soak") == 1
    assert text.index("second") < text.index("table")  # in its old place, not moved to the end


def test_a_run_writes_what_it_printed_and_a_failed_run_writes_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "RESULTS.md"
    with Results("demo", path):
        print("figure 1.5 s")
    assert "figure 1.5 s" in capsys.readouterr().out  # still shown as it ran
    kept = path.read_text()
    assert "## demo" in kept and "figure 1.5 s" in kept and "cores" in kept
    with pytest.raises(RuntimeError), Results("demo", path):
        print("half a table")
        raise RuntimeError("the bench failed")
    assert path.read_text() == kept
