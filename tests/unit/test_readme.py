"""The README's method table is generated from the registry, not written by hand."""

from pathlib import Path

from topiary.cli import methods_table


def test_readme_method_table_is_the_registry():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("<!-- methods:begin -->\n", 1)[1].split("\n<!-- methods:end -->", 1)[0]
    assert table == methods_table(), "regenerate it: topiary methods --markdown"
