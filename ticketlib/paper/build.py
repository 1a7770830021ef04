"""Build the paper: fill generated numbers and tables into paper.md, number figures and tables,
then pandoc → self-contained HTML and pandoc → Typst → PDF.

In paper.md:
  {{name}}              a value from paper/generated/values.json (written by the summary notebook)
  {{table:name}}        the markdown table paper/generated/name.md
  ![caption](figures/name){#fig:label}   a figure: PNG in the HTML, PDF in print
  @fig:label, @tbl:label                 "Figure N" / "Table N", numbered in order of appearance
  {{provenance}}        a table of the grids whose results the paper's inputs came from
  <!-- grids: a b -->   a section that draws on several grids says which (else one grid a section)
A missing value, table, figure or label, or a "TODO" left in the text, stops the build; so does
an input that paper/generated/manifest.json does not record (not written in this build), whose
grid's results changed since it was made (stale), or that mixes grids in a section (artefacts.py).
"""
import json
import os
import re
from pathlib import Path

import pandas as pd

from ticketlib.analysis.report import markdown_table
from ticketlib.analysis.results import read_identity
from ticketlib.errors import TicketError
from ticketlib.paper.artefacts import CHECKSUMS, changed_files

HTML_STYLE = """<style>
body { max-width: 46em; margin: auto; padding: 1em; font-family: Georgia, serif; line-height: 1.5; }
figure { counter-increment: figure; margin: 1.5em 0; text-align: center; }
figure img { max-width: 100%; }
figcaption::before { content: "Figure " counter(figure) ": "; font-weight: bold; }
table { counter-increment: table; border-collapse: collapse; margin: 1em auto; font-size: 0.9em; }
table caption::before { content: "Table " counter(table) ": "; font-weight: bold; }
h1#appendix { counter-reset: figure table; }
h1#appendix ~ figure figcaption::before { content: "Figure A" counter(figure) ": "; }
h1#appendix ~ table caption::before { content: "Table A" counter(table) ": "; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ccc; }
</style>
"""
# Figures float to a page's top or bottom (no half-empty pages) but not past their section (the
# appendix keeps them in place); tables stay in place and may continue on the next page.
TYPST_SETUP = """#set text(size: 10pt)
#set par(justify: true)
#show table: set text(size: 8pt)
#show table.cell: set text(hyphenate: false)
#show table.cell: set par(justify: false)
#show figure.where(kind: image): set figure(placement: auto)
#show figure.where(kind: table): set block(breakable: true)
#show figure.caption.where(kind: table): it => block(sticky: true, it)
#show heading.where(level: 1): it => { place.flush(); it }
"""


def fill(text: str, values: dict, tables: Path) -> str:
    """Substitute {{table:name}} and {{name}}; name every missing piece at once."""
    missing = []

    def table(match):
        path = tables / f"{match.group(1)}.md"
        if not path.is_file():
            missing.append(f"table {path}")
            return ""
        return path.read_text().strip()

    def value(match):
        if match.group(1) not in values:
            missing.append(f"value {match.group(1)!r}")
            return ""
        return str(values[match.group(1)])

    text = re.sub(r"\{\{table:([\w-]+)\}\}", table, text)
    text = re.sub(r"\{\{([\w.-]+)\}\}", value, text)
    if missing:
        raise TicketError(f"paper needs {', '.join(dict.fromkeys(missing))}; run the notebooks first (make study)")
    return text


APPENDIX = re.compile(r"^# Appendix\b.*$", re.M)


def number_references(text: str) -> str:
    """@fig:x → Figure N and @tbl:x → Table N, N in order of the {#fig:x}/{#tbl:x} labels; after the
    `# Appendix` heading they count again from A1, so the main text's numbers run in reading order."""
    split = APPENDIX.search(text)
    main, appendix = (text[:split.start()], text[split.start():]) if split else (text, "")
    for kind, word in (("fig", "Figure"), ("tbl", "Table")):
        numbers = {}
        for part, prefix in ((main, ""), (appendix, "A")):
            labels = re.findall(r"\{#" + kind + r":([\w-]+)", part)
            numbers |= {label: f"{prefix}{i + 1}" for i, label in enumerate(labels)}
        unknown = sorted(set(re.findall(r"@" + kind + r":([\w-]+)", text)) - set(numbers))
        if unknown:
            raise TicketError(f"paper refers to undefined {word.lower()}(s): {', '.join(unknown)}")
        text = re.sub(r"@" + kind + r":([\w-]+)", lambda m: f"{word} {numbers[m.group(1)]}", text)
    return text


def figure_paths(text: str, figures: Path, suffix: str) -> str:
    """figures/name → the file with `suffix`, checked to exist."""
    def path(match):
        file = figures / f"{match.group(1)}.{suffix}"
        if not file.is_file():
            raise TicketError(f"paper needs figure {file}; run the notebooks first (make study)")
        return f"]({file.resolve()})"
    return re.sub(r"\]\(figures/([\w-]+)\)", path, text)


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for each level-1 or level-2 section ('' for the text before the first)."""
    parts = re.split(r"^(#{1,2} .*)$", text, flags=re.M)
    return [("", parts[0])] + [(parts[i].lstrip("# ").strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def inputs(body: str) -> set[str]:
    """Manifest keys of the values, tables and figures a piece of paper.md uses."""
    tables = {f"table:{n}" for n in re.findall(r"\{\{table:([\w-]+)\}\}", body)}
    values = {f"value:{n}" for n in re.findall(r"\{\{([\w.-]+)\}\}", body) if n != "provenance"}
    figures = {f"figure:{n}" for n in re.findall(r"\]\(figures/([\w-]+)\)", body)}
    return tables | values | figures


def check_provenance(text: str, manifest: dict, results: Path) -> list[dict]:
    """Refuse inputs without a manifest entry, stale ones and sections mixing grids; returns the
    identities of the grids used."""
    problems, used = [], {}
    unrecorded = sorted(inputs(text) - set(manifest))
    if unrecorded:
        problems.append(f"not written in this build (no entry in the manifest): {', '.join(unrecorded)}")
    for heading, body in sections(text):
        sources: dict[str, set] = {}
        for key in sorted(inputs(body) & set(manifest)):
            for source in manifest[key]:
                sources.setdefault(source["grid"], set()).add((source["grid_hash"], source["table_sha256"], key))
                used[(source["grid"], source["grid_hash"], source["table_sha256"])] = source
        for grid, made in sources.items():
            if len({m[:2] for m in made}) > 1:
                problems.append(f"section {heading!r} mixes results of grid {grid}: "
                                + "; ".join(f"{k} from {h}/{t}" for h, t, k in sorted(made)))
        declared = re.search(r"<!--\s*grids:([^>]*)-->", body)
        undeclared = set(sources) - set(declared.group(1).split() if declared else [])
        if len(sources) > 1 and undeclared:
            problems.append(f"section {heading!r} draws on grids {', '.join(sorted(sources))}; "
                            f"declare them with <!-- grids: {' '.join(sorted(sources))} --> if that is meant")
    for grid, grid_hash, table_sha in sorted(used):
        current = results / grid / "grid.json"
        try:
            now = read_identity(grid, results) if current.is_file() else {}
        except TicketError as error:
            problems.append(str(error))
            continue
        if (now.get("grid_hash"), now.get("table_sha256")) != (grid_hash, table_sha):
            stale = sorted(k for k, v in manifest.items() if any(s["grid"] == grid and s["table_sha256"] == table_sha for s in v))
            problems.append(f"stale: {', '.join(stale[:4])}{' ...' if len(stale) > 4 else ''} made from grid {grid} "
                            f"({grid_hash}/{table_sha}), whose results in {current.parent} are "
                            f"{'gone' if not now else 'now ' + now['grid_hash'] + '/' + now['table_sha256']}")
    if problems:
        raise TicketError("paper inputs refused (rerun `make study`):\n  " + "\n  ".join(problems))
    return [used[key] for key in sorted(used)]


def made_on(identity: dict) -> str:
    """The machines a grid's rounds ran on, as recorded at export ('not recorded' for rounds made
    before machines were recorded, and for older exports)."""
    def name(m):
        if not isinstance(m, dict):
            return "not recorded"
        return f"{m['cpu']} {m['isa']}" + ("" if m["device"] == "cpu" else f" ({m['device']})")
    return ", ".join(dict.fromkeys(name(m["machine"]) for m in identity.get("made_on", []))) or "not recorded"


def provenance_table(grids: list[dict], results: Path) -> str:
    rows = []
    for source in grids:
        identity = read_identity(source["grid"], results)
        rows.append({"grid": f"`{source['grid']}`", "runs": identity["runs"],  # its parameter file: configs/GRID.yaml
                     "made on": made_on(identity),
                     "grid hash": f"`{source['grid_hash']}`", "table checksum": f"`{source['table_sha256']}`"})
    return markdown_table(pd.DataFrame(rows))


RAW = re.compile(r"(```[\s\S]*?```|`[^`\n]*`)")


def apostrophes(typst_source: str) -> str:
    """Pandoc writes ’ as ', and Typst's smart quotes open a quote after ')', '.' or a digit
    ("N(0, 1)‘s"): every ' that follows a non-space character outside raw text becomes ’."""
    parts = RAW.split(typst_source)
    return "".join(p if i % 2 else re.sub(r"(?<=\S)'", "’", p) for i, p in enumerate(parts))


def build(paper_dir="paper", figures="figures", out_dir="paper", results="results") -> list[Path]:
    """paper.md (+ references.bib) → paper.html and paper.pdf; returns the two paths."""
    import pypandoc
    import typst

    paper_dir, figures, out_dir = Path(paper_dir), Path(figures), Path(out_dir)
    for needed in (paper_dir / "paper.md", paper_dir / "references.bib"):
        if not needed.is_file():
            raise TicketError(f"paper source not found: {needed}")
    generated = paper_dir / "generated"
    values_file = generated / "values.json"
    values = json.loads(values_file.read_text()) if values_file.is_file() else {}
    manifest_file = generated / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    source = (paper_dir / "paper.md").read_text()
    grids = check_provenance(source, manifest, Path(results))
    checksums_file = generated / CHECKSUMS
    checksums = json.loads(checksums_file.read_text()) if checksums_file.is_file() else {}
    used = [values_file, *(generated / f"{n}.md" for n in re.findall(r"\{\{table:([\w-]+)\}\}", source)),
            *(figures / f"{n}.{s}" for n in re.findall(r"\]\(figures/([\w-]+)\)", source) for s in ("png", "pdf"))]
    edited = changed_files(used, checksums)
    if edited:
        raise TicketError(f"changed since the notebooks wrote them (by hand?): {', '.join(edited)}; rerun `make study`")
    values = {**values, "provenance": provenance_table(grids, Path(results))}
    text = number_references(fill(source, values, generated))
    if "TODO" in text:
        raise TicketError("paper.md still contains TODO")
    out_dir.mkdir(parents=True, exist_ok=True)
    common = ["--standalone", "--citeproc", f"--bibliography={paper_dir / 'references.bib'}",
              "--number-sections", "--shift-heading-level-by=0"]
    html, pdf = out_dir / "paper.html", out_dir / "paper.pdf"
    header = out_dir / ".style.html"
    header.write_text(HTML_STYLE)
    pypandoc.convert_text(figure_paths(text, figures, "png"), "html5", format="markdown", outputfile=str(html),
                          extra_args=[*common, "--embed-resources", "--mathml", "--toc",
                                      f"--include-in-header={header}"])
    header.unlink()
    typ = out_dir / ".paper.typ"
    source = pypandoc.convert_text(figure_paths(text, figures, "pdf"), "typst", format="markdown",
                                   extra_args=common)
    marker = "#show: doc => conf("
    if marker not in source:
        raise TicketError("pandoc's Typst template has no `#show: doc => conf(`: update TYPST_SETUP's hook")
    typ.write_text(apostrophes(source).replace(marker, TYPST_SETUP + marker, 1))
    # the same sources give the same bytes: the PDF's date is SOURCE_DATE_EPOCH (reproducible builds), else 1970
    typst.compile(str(typ), output=str(pdf), root="/", timestamp=int(os.environ.get("SOURCE_DATE_EPOCH", 0)))
    typ.unlink()
    return [html, pdf]
