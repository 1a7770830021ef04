import hashlib
import json
import shutil

import pytest

from ticketlib.analysis.results import load_grid
from ticketlib.errors import TicketError
from ticketlib.imp.export import export_grid
from ticketlib.paper.artefacts import Outputs
from ticketlib.paper.build import apostrophes, build, check_provenance, fill, number_references

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
    import pandas as pd

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "paper.md").write_text(TEMPLATE)
    (tmp_path / "paper" / "references.bib").write_text(BIB)
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    out = Outputs([], publish=True, root=tmp_path)  # artefacts of no grid
    out.figure(fig, "curve")
    out.table(pd.DataFrame({"level": [100, 50], "acc": [0.6, 0.61]}), "numbers")
    out.values({"dense_acc": 60.1})
    Outputs([], publish=True, root=tmp_path).values({"seeds": 5})
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


def test_appendix_figures_and_tables_count_again_from_a1():
    text = ("@fig:x, @fig:m and @tbl:y\n![](figures/m){#fig:m}\n# Appendix {-}\n"
            "![](figures/x){#fig:x}\nTable: Y {#tbl:y}\n![](figures/z){#fig:z} @fig:z")
    numbered = number_references(text)
    assert numbered.startswith("Figure A1, Figure 1 and Table A1") and numbered.endswith("Figure A2")


def test_build_makes_self_contained_html_and_pdf(paper):
    html, pdf = build(paper / "paper", paper / "figures", paper / "paper", paper / "results")
    page = html.read_text()
    assert "data:image/png;base64," in page and "Figure 1" in page and "Table 1" in page
    assert "Dense accuracy was 60.1% over 5 seeds" in page and "Frankle" in page  # value, citation
    assert "{{" not in page and "@fig" not in page
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
    assert not list((paper / "paper").glob(".*"))  # no intermediate files left behind
    first = pdf.read_bytes()
    build(paper / "paper", paper / "figures", paper / "paper", paper / "results")
    assert pdf.read_bytes() == first  # reproducible: no build date inside


def test_build_refuses_todo_and_missing_figures(paper):
    source = paper / "paper" / "paper.md"
    source.write_text(TEMPLATE.replace("# Results", "# Results\n\nTODO: finish"))
    with pytest.raises(TicketError, match="TODO"):
        build(paper / "paper", paper / "figures", paper / "paper", paper / "results")
    source.write_text(TEMPLATE)
    (paper / "figures" / "curve.pdf").unlink()
    with pytest.raises(TicketError, match="curve.pdf"):
        build(paper / "paper", paper / "figures", paper / "paper", paper / "results")


@pytest.mark.parametrize("edited", ["values.json", "numbers.md", "curve.png"])
def test_build_refuses_artefacts_changed_after_the_notebooks_wrote_them(paper, edited):
    path = (paper / "figures" if edited.endswith(".png") else paper / "paper" / "generated") / edited
    path.write_bytes(path.read_bytes().replace(b"60.1", b"70.1") if edited == "values.json" else path.read_bytes() + b" ")
    with pytest.raises(TicketError, match=f"changed since the notebooks wrote them .*{edited}.*rerun `make study`"):
        build(paper / "paper", paper / "figures", paper / "paper", paper / "results")


def test_build_refuses_damaged_results_behind_its_inputs(tiny_grid, tmp_path):
    root, _ = tiny_grid
    shutil.copytree(root / "results", tmp_path / "results")
    grid = load_grid("tiny", tmp_path / "results")
    Outputs([grid], publish=True, root=tmp_path).values({"imp.dense": 1})
    manifest = json.loads((tmp_path / "paper" / "generated" / "manifest.json").read_text())
    table = tmp_path / "results" / "tiny" / "table.parquet"
    table.write_bytes(table.read_bytes()[:-10])  # truncated after the notebooks ran
    with pytest.raises(TicketError, match="table.parquet does not match .*grid.json"):
        check_provenance("# R\n{{imp.dense}}", manifest, tmp_path / "results")


PROVENANCE_TEXT = """# Results

<!-- grids: tiny other -->
Dense {{imp.dense}}, sparse {{imp.sparse}}; ![](figures/curve)

# Discussion

Only {{imp.dense}}.
"""


def test_provenance_records_grids_and_refuses_unrecorded_stale_and_mixed_inputs(tiny_grid, tmp_path, data_root):
    root, configs = tiny_grid
    shutil.copytree(root / "results", tmp_path / "results")
    grid = load_grid("tiny", tmp_path / "results")
    Outputs([grid], publish=True, root=tmp_path).values({"imp.dense": 1, "imp.sparse": 2})
    manifest = lambda: json.loads((tmp_path / "paper" / "generated" / "manifest.json").read_text())  # noqa: E731
    assert manifest()["value:imp.dense"] == [{k: grid.identity[k] for k in ("grid", "grid_hash", "table_sha256")}]
    with pytest.raises(TicketError, match=r"not written in this build .*: figure:curve"):
        check_provenance(PROVENANCE_TEXT, manifest(), tmp_path / "results")
    Outputs([], publish=True, root=tmp_path).record({"figure:curve"})
    assert [g["grid"] for g in check_provenance(PROVENANCE_TEXT, manifest(), tmp_path / "results")] == ["tiny"]
    # one value re-made from the grid exported with a round fewer: the section mixes two versions of it
    export_grid("tiny", [{**c, "rounds": 2} for c in configs], root / "runs", tmp_path / "results", data_root)
    Outputs([load_grid("tiny", tmp_path / "results")], publish=True, root=tmp_path).values({"imp.sparse": 3})
    with pytest.raises(TicketError) as refused:
        check_provenance(PROVENANCE_TEXT, manifest(), tmp_path / "results")
    assert "section 'Results' mixes results of grid tiny" in str(refused.value)
    assert "stale: value:imp.dense made from grid tiny" in str(refused.value)  # its results changed since
    assert "section 'Discussion'" not in str(refused.value)


def test_sections_drawing_on_several_grids_must_declare_them(tmp_path):
    digest = {grid: hashlib.sha256(grid.encode()).hexdigest()[:16] for grid in ("g1", "g2")}
    sources = {"a": [dict(grid="g1", grid_hash="1", table_sha256=digest["g1"])],
               "b": [dict(grid="g2", grid_hash="2", table_sha256=digest["g2"])]}
    manifest = {"value:a": sources["a"], "value:b": sources["b"]}
    for grid in ("g1", "g2"):
        (tmp_path / grid).mkdir()
        (tmp_path / grid / "table.parquet").write_bytes(grid.encode())
        (tmp_path / grid / "grid.json").write_text(json.dumps(dict(grid_hash=grid[1], table_sha256=digest[grid])))
    with pytest.raises(TicketError, match=r"section 'R' draws on grids g1, g2; declare them with <!-- grids: g1 g2 -->"):
        check_provenance("# R\n{{a}} {{b}}", manifest, tmp_path)
    assert len(check_provenance("# R\n<!-- grids: g1 g2 -->\n{{a}} {{b}}", manifest, tmp_path)) == 2


def test_exploratory_outputs_never_touch_the_study(tmp_path):
    Outputs([], publish=False, root=tmp_path).values({"x": 1})
    assert (tmp_path / "build" / "exploratory" / "generated" / "values.json").is_file()
    assert not (tmp_path / "paper").exists() and not (tmp_path / "figures").exists()


def test_apostrophes_close_after_brackets_and_digits_but_not_in_raw_text():
    assert apostrophes("N(0, 1)'s and θ0's and al.'s") == "N(0, 1)’s and θ0’s and al.’s"
    assert apostrophes("a 'quote' and `raw 'text'`") == "a 'quote’ and `raw 'text'`"  # an opening ' stays smart


def test_the_provenance_table_names_the_machines_a_grid_ran_on():
    from ticketlib.paper.build import made_on
    cpu = dict(cpu="AMD EPYC", isa="AVX2", device="cpu", kernels="AVX2", torch="2.13.0")
    identity = {"made_on": [{"machine": cpu, "rounds": 10}, {"machine": cpu | dict(isa="AVX-512"), "rounds": 5},
                            {"machine": cpu, "rounds": 3}]}
    assert made_on(identity) == "AMD EPYC AVX2, AMD EPYC AVX-512"
    assert made_on({"made_on": [{"machine": cpu | dict(device="cuda"), "rounds": 1}]}) == "AMD EPYC AVX2 (cuda)"
    assert made_on({}) == "not recorded"
    assert made_on({"made_on": [{"machine": "unrecorded", "rounds": 4}, identity["made_on"][0]]}) == "not recorded, AMD EPYC AVX2"


def test_a_missing_value_is_named_once_however_often_the_paper_uses_it(tmp_path):
    with pytest.raises(TicketError) as error:
        fill("{{a.b}} and {{a.b}} and {{c}}", {"c": 1}, tmp_path)
    assert str(error.value).startswith("paper needs value 'a.b'; run the notebooks")
