import json

import pytest

from ticketlib.errors import TicketError
from ticketlib.figures import save_values
from ticketlib.paper import build, fill, number_references

TEMPLATE = """---
title: A test paper
author: [Ada Lovelace]
---

# Results

Dense accuracy was {{dense_acc}}% over {{seeds}} seeds [@frankle2019]; see @fig:curve and @tbl:numbers.

![Accuracy against weights remaining.](figures/curve){#fig:curve}

{{table:numbers}}

Table: Numbers. {#tbl:numbers}

# References
"""
BIB = """@inproceedings{frankle2019, title={The Lottery Ticket Hypothesis}, author={Frankle, Jonathan and Carbin,
Michael}, booktitle={ICLR}, year={2019}}"""


@pytest.fixture
def paper(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ticketlib.figures import save, save_table
    import pandas as pd

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "paper.md").write_text(TEMPLATE)
    (tmp_path / "paper" / "references.bib").write_text(BIB)
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    save(fig, "curve", tmp_path / "figures")
    save_table(pd.DataFrame({"level": [100, 50], "acc": [0.6, 0.61]}), "numbers", tmp_path / "paper" / "generated")
    save_values({"dense_acc": 60.1}, tmp_path / "paper" / "generated")
    save_values({"seeds": 5}, tmp_path / "paper" / "generated")
    return tmp_path


def test_values_merge_across_notebooks(paper):
    values = json.loads((paper / "paper" / "generated" / "values.json").read_text())
    assert values == {"dense_acc": 60.1, "seeds": 5}


def test_fill_names_every_missing_piece(tmp_path):
    assert fill("{{a}}% of {{b.c}}", {"a": 1.5, "b.c": "x"}, tmp_path) == "1.5% of x"
    with pytest.raises(TicketError, match=r"table .*nope.md, value 'missing'"):
        fill("{{table:nope}} {{missing}}", {}, tmp_path)


def test_references_are_numbered_in_order():
    text = "@fig:b then @fig:a\n![](figures/a){#fig:a}\n![](figures/b){#fig:b}\n@tbl:t\nTable: T {#tbl:t}"
    assert number_references(text).splitlines()[0] == "Figure 2 then Figure 1"
    assert "Table 1" in number_references(text)
    with pytest.raises(TicketError, match="undefined figure.*: c"):
        number_references("@fig:c")


def test_build_makes_self_contained_html_and_pdf(paper):
    html, pdf = build(paper / "paper", paper / "figures", paper / "paper")
    page = html.read_text()
    assert "data:image/png;base64," in page and "Figure 1" in page and "Table 1" in page
    assert "Dense accuracy was 60.1% over 5 seeds" in page and "Frankle" in page  # value, citation
    assert "{{" not in page and "@fig" not in page
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
    assert not list((paper / "paper").glob(".*"))  # no intermediate files left behind


def test_build_refuses_todo_and_missing_figures(paper):
    source = paper / "paper" / "paper.md"
    source.write_text(TEMPLATE.replace("# Results", "# Results\n\nTODO: finish"))
    with pytest.raises(TicketError, match="TODO"):
        build(paper / "paper", paper / "figures", paper / "paper")
    source.write_text(TEMPLATE)
    (paper / "figures" / "curve.pdf").unlink()
    with pytest.raises(TicketError, match="curve.pdf"):
        build(paper / "paper", paper / "figures", paper / "paper")
