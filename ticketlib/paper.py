"""Build the paper: fill generated numbers and tables into paper.md, number figures and tables,
then pandoc → self-contained HTML and pandoc → Typst → PDF.

In paper.md:
  {{name}}              a value from paper/generated/values.json (written by the summary notebook)
  {{table:name}}        the markdown table paper/generated/name.md
  ![caption](figures/name){#fig:label}   a figure: PNG in the HTML, PDF in print
  @fig:label, @tbl:label                 "Figure N" / "Table N", numbered in order of appearance
A missing value, table, figure or label, or a "TODO" left in the text, stops the build.
"""
import json
import re
from pathlib import Path

from .errors import TicketError

HTML_STYLE = """<style>
body { max-width: 46em; margin: auto; padding: 1em; font-family: Georgia, serif; line-height: 1.5; }
figure { counter-increment: figure; margin: 1.5em 0; text-align: center; }
figure img { max-width: 100%; }
figcaption::before { content: "Figure " counter(figure) ": "; font-weight: bold; }
table { counter-increment: table; border-collapse: collapse; margin: 1em auto; font-size: 0.9em; }
table caption::before { content: "Table " counter(table) ": "; font-weight: bold; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ccc; }
</style>
"""
TYPST_SETUP = """#set text(size: 10pt)
#set par(justify: true)
#show table: set text(size: 8pt)
#show figure.where(kind: table): set block(breakable: true)
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
        raise TicketError(f"paper needs {', '.join(missing)}; run the notebooks first (make study)")
    return text


def number_references(text: str) -> str:
    """@fig:x → Figure N and @tbl:x → Table N, N in order of the {#fig:x}/{#tbl:x} labels."""
    for kind, word in (("fig", "Figure"), ("tbl", "Table")):
        labels = re.findall(r"\{#" + kind + r":([\w-]+)", text)
        numbers = {label: i + 1 for i, label in enumerate(labels)}
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


def build(paper_dir="paper", figures="figures", out_dir="paper") -> list[Path]:
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
    text = number_references(fill((paper_dir / "paper.md").read_text(), values, generated))
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
                                   extra_args=[*common, "--toc"])
    marker = "#show: doc => conf("
    if marker not in source:
        raise TicketError("pandoc's Typst template has no `#show: doc => conf(`: update TYPST_SETUP's hook")
    typ.write_text(source.replace(marker, TYPST_SETUP + marker, 1))
    typst.compile(str(typ), output=str(pdf), root="/")
    typ.unlink()
    return [html, pdf]
