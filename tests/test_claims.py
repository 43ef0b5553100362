"""Every measured figure in README.md, MODEL_CARD.md and docs/*.md comes from a results file
(benchmarks/claims.yaml, checked by benchmarks/claims.py; docs/benchmarks.md says how to add a claim)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from benchmarks import claims

ROOT = Path(__file__).resolve().parents[1]
RUN = {"commit": "0" * 40, "dirty": False, "command": "python benchmarks/x.py"}


def test_every_figure_in_the_docs_is_backed():
    problems = claims.check()
    assert not problems, "\n".join(problems)


# ---- the rule on a small repository of its own ----

README = """\
# Tool

Reconstructs 17 views in 7.3 s on a 2-core CPU, keeping pixels that agree within 5 %.

| scene | AUC@30 | seconds |
|---|---|---|
| desk | 99.5 | 4.2 |
"""


def render_fixture_table(results: dict) -> str:
    """Renderer used by the fixture's table row (tests.test_claims:render_fixture_table)."""
    lines = ["| scene | AUC@30 | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {r['auc30']:.1f} | {r['seconds']:.1f} |" for name, r in results["scenes"].items()]
    return "\n".join(lines)


def make_repo(root: Path, readme: str = README, results: dict | None = None, claims_doc: dict | None = None) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(readme)
    results = results if results is not None else {"run": RUN, "total_s": 7.31, "scenes": {"desk": {"auc30": 0.995 * 100, "seconds": 4.21}}}
    (root / "benchmarks" / "results" / "x_cpu.json").write_text(json.dumps(results))
    claims_doc = claims_doc if claims_doc is not None else {
        "claims": [{"doc": "README.md", "text": "17 views in 7.3 s on a 2-core CPU", "file": "benchmarks/results/x_cpu.json",
                    "figures": [{"value": "7.3", "key": "total_s", "digits": 1}]}],
        "tables": [{"doc": "README.md", "header": "| scene | AUC@30 |", "file": "benchmarks/results/x_cpu.json",
                    "render": "tests.test_claims:render_fixture_table"}],
        "not_measured": [{"doc": "README.md", "text": "agree within 5 %", "reason": "a threshold"}],
    }
    (root / "benchmarks" / "claims.yaml").write_text(yaml.safe_dump(claims_doc, allow_unicode=True))
    return root


def test_fixture_passes(tmp_path):
    assert claims.check(make_repo(tmp_path)) == []


def test_edited_number_in_prose_fails(tmp_path):
    problems = claims.check(make_repo(tmp_path, README.replace("7.3 s", "6.9 s")))
    assert any("claim no longer in the document" in p for p in problems), problems
    assert any("'6.9'" in p and "without a claims row" in p for p in problems), problems


def test_results_file_that_disagrees_fails(tmp_path):
    problems = claims.check(make_repo(tmp_path, results={"run": RUN, "total_s": 8.04, "scenes": {"desk": {"auc30": 99.5, "seconds": 4.2}}}))
    assert problems == ["README.md: '7.3' in '17 views in 7.3 s on a 2-core CPU' does not match "
                        "benchmarks/results/x_cpu.json total_s = 8.0"]


def test_edited_table_cell_fails(tmp_path):
    problems = claims.check(make_repo(tmp_path, README.replace("| 99.5 |", "| 99.7 |")))
    assert len(problems) == 1 and "table differs" in problems[0] and "99.7" in problems[0], problems


def test_new_unclaimed_figures_fail(tmp_path):
    readme = README + "\nOn the Buddha it scores AUC@30 70.1 and takes 12 min; speed-up 2.2×; 1.7 GB.\n"
    problems = claims.check(make_repo(tmp_path, readme))
    for number in ("70.1", "12", "2.2", "1.7"):
        assert any(f"'{number}'" in p and "without a claims row" in p for p in problems), (number, problems)
    # not figures: sizes, counts and settings without a unit
    readme = README + "\nImages of 640 × 480 px, `--window 32`, 10 views, version 2.13.0.\n"
    assert claims.check(make_repo(tmp_path, readme)) == []


def test_measured_table_without_a_row_fails(tmp_path):
    readme = README + "\n| model | AbsRel |\n|---|---|\n| tiny | 0.193 |\n"
    problems = claims.check(make_repo(tmp_path, readme))
    assert any("'0.193'" in p and "measured table without a claims row" in p for p in problems), problems


def test_claim_must_name_its_figures(tmp_path):
    """A snippet covers only the numbers it lists: a second figure slipped into a claimed sentence fails."""
    readme = README.replace("17 views in 7.3 s on a 2-core CPU", "17 views in 7.3 s (9.9 s cold) on a 2-core CPU")
    doc = yaml.safe_load((make_repo(tmp_path) / "benchmarks" / "claims.yaml").read_text())
    doc["claims"][0]["text"] = "17 views in 7.3 s (9.9 s cold) on a 2-core CPU"
    problems = claims.check(make_repo(tmp_path, readme, claims_doc=doc))
    assert len(problems) == 1 and "'9.9'" in problems[0], problems


def test_results_without_run_record_fail(tmp_path):
    problems = claims.check(make_repo(tmp_path, results={"total_s": 7.31, "scenes": {"desk": {"auc30": 99.5, "seconds": 4.2}}}))
    assert problems == ["benchmarks/results/x_cpu.json: records no run (commit, command, machine): re-run its "
                        "benchmark (benchmarks/provenance.py)"]


def test_stale_allow_list_entry_fails(tmp_path):
    problems = claims.check(make_repo(tmp_path, README.replace("agree within 5 %", "agree within 4 %")))
    assert any("not_measured text no longer in the document" in p for p in problems), problems


def test_key_paths_globs_and_expressions():
    data = {"scenes": {"demo/a": {"k": 0.64}, "demo/b": {"k": 0.88}, "syn/c": {"k": 0.1}}, "rows": [{"s": 2.0}, {"s": 3.0}]}
    assert claims.lookup(data, "scenes.demo/a.k") == 0.64
    assert claims.lookup(data, "scenes.demo/*.k") == [0.64, 0.88]
    assert claims.lookup(data, "rows.1.s") == 3.0
    spec = {"keys": {"v": "scenes.demo/*.k"}, "expr": "100 * min(v)", "digits": 0}
    cache = {"f.json": data}
    assert claims.format_value(claims.figure_value(spec, "f.json", cache), spec) == "64"
    with pytest.raises(KeyError):
        claims.lookup(data, "scenes.demo/z.k")


# ---- the real documents: editing a number fails ----

def copy_repo(tmp_path: Path) -> Path:
    """The repository's documents, claims and results files, copied (pictures left out)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("README.md", "MODEL_CARD.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    return tmp_path


def edit_figure(root: Path, fig: claims.Figure) -> None:
    """Add 1 to the last digit's place of one figure, in the source line where the check found it."""
    path = root / fig.doc
    lines = path.read_text().splitlines(keepends=True)
    digits = fig.number.split(".")[-1]
    step = 10 ** -len(digits) if "." in fig.number else 1
    new = f"{float(fig.number.replace(',', '')) + step:.{len(digits) if '.' in fig.number else 0}f}"
    assert fig.number in lines[fig.line - 1]
    lines[fig.line - 1] = lines[fig.line - 1].replace(fig.number, new, 1)
    path.write_text("".join(lines))


def test_editing_a_readme_number_fails(tmp_path):
    """On a copy of the repository's documents, claims and results, change one figure of README.md that a
    claim backs (its prose), then one of a table that a results file renders: each edit fails the check."""
    root = copy_repo(tmp_path)
    assert claims.check(root) == []
    doc = claims.parse_document(root / "README.md", "README.md")
    spec = claims.load_claims(root / "benchmarks" / "claims.yaml")
    spans = [span for c in spec["claims"] if c["doc"] == "README.md" for span in doc.occurrences(c["text"])]
    figures = claims.find_figures(doc)
    in_claims = [f for f in figures if f.table is None and any(a <= f.start and f.end <= b for a, b in spans)]
    in_tables = [f for f in figures if f.table is not None
                 and any(f.table.startswith(t["header"]) for t in spec["tables"] if t["doc"] == "README.md")]
    if not in_claims and not in_tables:
        pytest.skip("README.md has no claimed figure yet")
    for fig in (in_claims[:1] + in_tables[:1]):
        root = copy_repo(tmp_path / fig.number.replace(".", "_"))
        edit_figure(root, fig)
        problems = claims.check(root)
        assert problems, f"editing {fig.number} on README.md:{fig.line} went unnoticed"


def test_docs_say_how_to_add_a_claim():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "claims.yaml" in text and "python benchmarks/claims.py" in text
    assert textwrap.dedent(claims.__doc__).count("claims.yaml") >= 1


def test_no_figure_is_left_unbacked():
    """The inventory of figures without a results file (issue 25) is empty and stays so: a new figure needs a
    results file and a claims row, not an ``unbacked`` entry."""
    doc = yaml.safe_load((ROOT / "benchmarks" / "claims.yaml").read_text())
    assert not doc.get("unbacked"), [entry.get("text") or entry.get("table") for entry in doc["unbacked"]]
