"""The claims check: every measured figure in README.md, MODEL_CARD.md and docs/*.md comes from a results file.

``benchmarks/claims.yaml`` lists, per document, what its figures are:

* ``claims``: a snippet of the document's text (``text``, as it appears, line breaks as spaces) and the figures
  in it (``figures``), each with the results file (``file``), the value's key path (``key``, dot-separated;
  a segment may be a glob, ``*`` or ``demo/*``, giving a list) or an expression over named key paths
  (``keys`` + ``expr``, e.g. ``100 * min(v)``), an optional ``scale`` (100 for a fraction shown in %) and the
  ``digits`` it is rounded to. The snippet must still be in the document and every figure must equal the file's
  value rounded as stated.
* ``tables``: a table of measured figures, found by the start of its header line (``header``), regenerated from
  a results file by a function of the benchmark that made it (``render``: ``module:function``, called with the
  parsed JSON); the document's table must equal the rendered one line for line.
* ``not_measured``: snippets whose numbers are not measurements (option defaults, limits, thresholds, sizes),
  each with its ``reason``.
* ``unbacked``: figures known to have no results file yet, each with its ``reason``. This list only shrinks.

What counts as a measured figure (``find_figures``): in prose and in tables without a measured header, a number
followed by a unit of time, size, rate, share or angle (``7.3 s``, ``22 MiB``, ``38.3 views/s``, ``64 %``,
``2.2×``, ``1.75°``; ranges such as ``0.34–0.41 s`` give both numbers), and a number right after a metric's
name (``AUC@30 99.5``, ``ATE 52``, ``AbsRel 0.36 → 0.21``, ``registers 11``, ``scored 77.9``); in a table whose
header names a metric or a unit (AUC, ATE, AbsRel, δ, RRA, RTA, seconds, `s`, RSS, MiB, loss, speed-up,
accuracy, registered, disagreement, pixels kept), every number outside the first column. Every such figure
must lie inside a claim's snippet (and be one of its figures), a rendered table, a ``not_measured`` snippet or
an ``unbacked`` one. Numbers without a unit or metric name in prose (``640 × 480``, ``--window 32``, "17
views") are not figures.

Every results file a claim or table cites must record its run (``benchmarks/provenance.py``: a ``"run"``
block with the commit).

Run ``python benchmarks/claims.py`` to print every problem (what ``tests/test_claims.py`` fails on), or
``python benchmarks/claims.py --figures README.md`` to list the figures the check finds in one document.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ROOT / "benchmarks" / "claims.yaml"
DOC_GLOBS = ("README.md", "MODEL_CARD.md", "docs/*.md")

NUM = r"(?<![\w.@/<^])\d+(?:,\d{3})*(?:\.\d+)?"
UNITS = (r"(?:%|ms|s|min|minutes?|seconds?|hours?|h|MiB|MB|GiB|GB|KB|kB|TB|img/s|views/s|frames/s|scenes/s|s/step|"
         r"fps|°|GFLOP|TFLOP/s|M points|M parameters|bytes)")
SPEEDUP = r"(?:×|x)(?![\w\d])"  # written against the number: "2.2×", "1.41–1.46×" (not "640 × 480", "4 × (a + b)")
UNIT_FIGURE = re.compile(rf"({NUM}(?:\s*(?:[–-]|to)\s*{NUM})?)(?:\s?{UNITS}(?![\w/])|{SPEEDUP})")
METRIC = r"(?:AUC@\d+|AUC|ATE|AbsRel|δ<1\.25|RRA|RTA|RMSE|accuracy|completeness|loss|scored|scores|reaches|registers|scoring)"
GAP = r"(?:\s|\*\*|[:=≥≤<>≈~]|\bof\b|\bto\b|\bis\b|\bwas\b|\bat\b)*"
METRIC_FIGURE = re.compile(rf"{METRIC}{GAP}({NUM}(?:\s*(?:→|–|-|/|vs\.?|against)\s*{NUM})*)")
MEASURED_HEADER = re.compile(r"AUC|ATE|AbsRel|δ|RRA|RTA|seconds|\|\s*s\s*\||\bs\b|RSS|MiB|loss|speed-up|accuracy|"
                             r"registered|disagreement|pixels kept|img/s|views/s")
NUMBER = re.compile(NUM)


def normalise_number(text: str) -> str:
    return text.replace(",", "").replace("−", "-")


@dataclass
class Figure:
    """A measured figure found in a document: ``number`` as written, where (``start``/``end`` in the
    document's flattened text, or the table's header for a table cell) and its ``line``."""

    doc: str
    number: str
    line: int
    start: int = -1
    end: int = -1
    table: str | None = None
    context: str = ""

    def where(self) -> str:
        return f"{self.doc}:{self.line}: {self.number!r} in {self.context!r}"


@dataclass
class Table:
    line: int                  # 1-based line of the header
    lines: list[str]
    measured: bool

    @property
    def header(self) -> str:
        return self.lines[0]


@dataclass
class Document:
    """A markdown document as the check sees it: its prose flattened to one line (whitespace runs collapsed,
    measured tables left out) with a map back to line numbers, and its tables."""

    name: str
    flat: str
    offsets: list[int]         # flat offset where each source line starts (for line numbers)
    tables: list[Table] = field(default_factory=list)

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.offsets) - 1
        while lo < hi:  # last line starting at or before offset
            mid = (lo + hi + 1) // 2
            if self.offsets[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def occurrences(self, snippet: str) -> list[tuple[int, int]]:
        text = " ".join(snippet.split())
        return [(m.start(), m.start() + len(text)) for m in re.finditer(re.escape(text), self.flat)] if text else []


def parse_document(path: Path, name: str) -> Document:
    lines = path.read_text(encoding="utf-8").splitlines()
    parts: list[str] = []
    offsets: list[int] = []
    tables: list[Table] = []
    pos = 0
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            block = [ln.rstrip() for ln in lines[i:j]]
            measured = bool(MEASURED_HEADER.search(block[0]))
            tables.append(Table(i + 1, block, measured))
            for k in range(i, j):  # a measured table is checked cell by cell, not as prose
                offsets.append(pos)
                if not measured:
                    text = " ".join(lines[k].split()) + " "
                    parts.append(text)
                    pos += len(text)
            i = j
            continue
        offsets.append(pos)
        text = " ".join(lines[i].split())
        if text:
            parts.append(text + " ")
            pos += len(text) + 1
        i += 1
    return Document(name, "".join(parts), offsets, tables)


def find_figures(doc: Document) -> list[Figure]:
    """Every measured figure of ``doc`` (see the module docstring for the rule)."""
    found: dict[tuple[int, int], Figure] = {}
    for pattern in (UNIT_FIGURE, METRIC_FIGURE):
        for m in pattern.finditer(doc.flat):
            base = m.start(1)
            for n in NUMBER.finditer(m.group(1)):
                a, b = base + n.start(), base + n.end()
                context = doc.flat[max(0, a - 40):min(len(doc.flat), b + 20)]
                found.setdefault((a, b), Figure(doc.name, n.group(0), doc.line_of(a), a, b, None, context))
    figures = sorted(found.values(), key=lambda f: f.start)
    for table in doc.tables:
        if not table.measured:
            continue
        for k, row in enumerate(table.lines[2:], start=2):
            cells = row.strip().strip("|").split("|")
            for cell in cells[1:]:
                for n in NUMBER.finditer(cell):
                    figures.append(Figure(doc.name, n.group(0), table.line + k, table=table.header,
                                          context=row[:80]))
    return figures


def documents(root: Path = ROOT) -> dict[str, Document]:
    out = {}
    for pattern in DOC_GLOBS:
        for path in sorted(root.glob(pattern)):
            name = path.relative_to(root).as_posix()
            out[name] = parse_document(path, name)
    return out


# ----- values from results files -----

def lookup(data, key: str | list):
    """The value at a dot-separated key path; a segment with glob characters gives a list over the matches."""
    parts = key if isinstance(key, list) else key.split(".")
    nodes, many = [data], False
    for part in parts:
        nxt = []
        for node in nodes:
            if isinstance(node, list):
                items = {str(i): v for i, v in enumerate(node)}
            elif isinstance(node, dict):
                items = node
            else:
                raise KeyError(f"{part!r}: not a mapping or list")
            if any(c in part for c in "*?["):
                many = True
                nxt += [v for k, v in items.items() if fnmatch.fnmatchcase(k, part)]
            elif part in items:
                nxt.append(items[part])
            else:
                raise KeyError(f"no key {part!r}")
        nodes = nxt
    return nodes if many else nodes[0]


SAFE = {"min": min, "max": max, "abs": abs, "len": len, "sum": sum, "round": round,
        "mean": lambda v: sum(v) / len(v), "median": lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else
        (sorted(v)[len(v) // 2 - 1] + sorted(v)[len(v) // 2]) / 2, "math": math}


def figure_value(spec: dict, default_file: str | None, cache: dict, root: Path = ROOT) -> float:
    file = spec.get("file", default_file)
    if file is None:
        raise ValueError("no results file")
    data = load_results(file, cache, root)
    if "expr" in spec:
        names = {name: lookup(data, key) for name, key in spec.get("keys", {}).items()}
        value = eval(spec["expr"], {"__builtins__": {}}, {**SAFE, **names})  # noqa: S307 (our own table)
    else:
        value = lookup(data, spec["key"])
    return float(value) * float(spec.get("scale", 1))


def format_value(value: float, spec: dict) -> str:
    return f"{value:.{int(spec.get('digits', 1))}f}"


def load_results(file: str, cache: dict, root: Path = ROOT):
    if file not in cache:
        cache[file] = json.loads((root / file).read_text())
    return cache[file]


def render_table(spec: dict, cache: dict, root: Path = ROOT) -> list[str]:
    module, function = spec["render"].split(":")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    fn = getattr(importlib.import_module(module), function)
    return [ln.rstrip() for ln in fn(load_results(spec["file"], cache, root)).strip("\n").splitlines()]


# ----- the check -----

def load_claims(path: Path = CLAIMS) -> dict:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for section in ("claims", "tables", "not_measured", "unbacked"):
        data.setdefault(section, [])
        data[section] = data[section] or []
    return data


def check(root: Path = ROOT, claims_path: Path | None = None) -> list[str]:
    """Every problem, one line each; an empty list when every figure is backed. ``root``: the repository (its
    documents and results files); ``claims_path``: default ``root/benchmarks/claims.yaml``."""
    claims_path = claims_path or root / "benchmarks" / "claims.yaml"
    docs = documents(root)
    claims = load_claims(claims_path)
    problems: list[str] = []
    cache: dict = {}
    covered: dict[str, list[tuple[int, int, set[str] | None]]] = {name: [] for name in docs}
    tables_done: dict[str, set[str]] = {name: set() for name in docs}

    def doc_of(entry: dict, what: str) -> Document | None:
        doc = docs.get(entry.get("doc", ""))
        if doc is None:
            problems.append(f"{what}: no document {entry.get('doc')!r}")
        return doc

    cited_files = set()
    for entry in claims["claims"]:
        doc = doc_of(entry, "claim")
        if doc is None:
            continue
        text = entry["text"]
        spans = doc.occurrences(text)
        if not spans:
            problems.append(f"{doc.name}: claim no longer in the document: {text!r}")
            continue
        numbers_in_text = [normalise_number(n) for n in NUMBER.findall(" ".join(text.split()))]
        values = set()
        for spec in entry.get("figures", []):
            shown = normalise_number(str(spec["value"]))
            values.add(shown)
            if shown not in numbers_in_text:
                problems.append(f"{doc.name}: figure {shown!r} is not in the claim's text {text!r}")
                continue
            file = spec.get("file", entry.get("file"))
            cited_files.add(file)
            try:
                actual = format_value(figure_value(spec, entry.get("file"), cache, root), spec)
            except (KeyError, ValueError, TypeError, ZeroDivisionError, OSError, NameError, SyntaxError) as exc:
                problems.append(f"{doc.name}: {shown!r} in {text!r}: cannot read {file} "
                                f"{spec.get('key') or spec.get('expr')}: {exc}")
                continue
            if normalise_number(actual) != shown:
                problems.append(f"{doc.name}: {shown!r} in {text!r} does not match {file} "
                                f"{spec.get('key') or spec.get('expr')} = {actual}")
        for a, b in spans:
            covered[doc.name].append((a, b, values))

    for entry in claims["tables"]:
        doc = doc_of(entry, "table")
        if doc is None:
            continue
        table = next((t for t in doc.tables if t.header.startswith(entry["header"].rstrip())), None)
        if table is None:
            problems.append(f"{doc.name}: no table with the header {entry['header']!r}")
            continue
        tables_done[doc.name].add(table.header)
        cited_files.add(entry["file"])
        try:
            rendered = render_table(entry, cache, root)
        except Exception as exc:  # noqa: BLE001  (any failure of the renderer is a problem to report)
            problems.append(f"{doc.name}:{table.line}: cannot render the table from {entry['file']} with "
                            f"{entry['render']}: {type(exc).__name__}: {exc}")
            continue
        if rendered != table.lines:
            diff = [f"    doc:      {a}\n    results:  {b}" for a, b in zip(table.lines, rendered) if a != b]
            if len(rendered) != len(table.lines):
                diff.append(f"    {len(table.lines)} lines in the document, {len(rendered)} rendered")
            problems.append(f"{doc.name}:{table.line}: table differs from {entry['file']} ({entry['render']}):\n"
                            + "\n".join(diff[:6]))

    for section in ("not_measured", "unbacked"):
        for entry in claims[section]:
            doc = doc_of(entry, section)
            if doc is None:
                continue
            if not entry.get("reason"):
                problems.append(f"{doc.name}: {section} entry without a reason: {entry}")
            if "table" in entry:
                table = next((t for t in doc.tables if t.header.startswith(entry["table"].rstrip())), None)
                if table is None:
                    problems.append(f"{doc.name}: {section}: no table with the header {entry['table']!r}")
                else:
                    tables_done[doc.name].add(table.header)
                continue
            spans = doc.occurrences(entry["text"])
            if not spans:
                problems.append(f"{doc.name}: {section} text no longer in the document: {entry['text']!r}")
            covered[doc.name] += [(a, b, None) for a, b in spans]

    for file in sorted(f for f in cited_files if f):
        try:
            run = load_results(file, cache, root).get("run")
        except (OSError, ValueError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        if not isinstance(run, dict) or not run.get("commit"):
            problems.append(f"{file}: records no run (commit, command, machine): re-run its benchmark "
                            "(benchmarks/provenance.py)")

    for name, doc in docs.items():
        for fig in find_figures(doc):
            if fig.table is not None:
                if fig.table not in tables_done[name]:
                    problems.append(f"{fig.where()}: measured table without a claims row (table "
                                    f"{fig.table[:60]!r})")
                continue
            ok = any(a <= fig.start and fig.end <= b and (values is None or normalise_number(fig.number) in values)
                     for a, b, values in covered[name])
            if not ok:
                problems.append(f"{fig.where()}: figure without a claims row")
    return list(dict.fromkeys(problems))


def snippet_around(doc: Document, start: int, end: int, margin: int = 30) -> tuple[int, int]:
    """A span of ``doc.flat`` around ``[start, end)`` cut at word boundaries (for a new claims entry)."""
    a = max(0, start - margin)
    while a > 0 and not doc.flat[a - 1].isspace():
        a -= 1
    b = min(len(doc.flat), end + margin)
    while b < len(doc.flat) and not doc.flat[b].isspace():
        b += 1
    return a, b


def inventory(reason: str) -> str:
    """YAML entries (for ``unbacked:``, or to turn into ``claims:``) for every figure the check finds without
    a claims row: one snippet per run of nearby figures, one entry per measured table."""
    import yaml

    problems = set(check())
    entries = []
    for name, doc in documents().items():
        spans: list[list[int]] = []
        tables = []
        for fig in find_figures(doc):
            if not any(p.startswith(f"{fig.where()}:") or p.startswith(fig.where()) for p in problems):
                continue
            if fig.table is not None:
                if fig.table not in tables:
                    tables.append(fig.table)
                continue
            a, b = snippet_around(doc, fig.start, fig.end)
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        entries += [{"doc": name, "text": doc.flat[a:b].strip(), "reason": reason} for a, b in spans]
        entries += [{"doc": name, "table": header[:60], "reason": reason} for header in tables]
    return yaml.safe_dump(entries, allow_unicode=True, sort_keys=False, width=1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", metavar="DOC", help="list the measured figures found in DOC and stop")
    parser.add_argument("--inventory", metavar="REASON",
                        help="print YAML entries for the figures without a claims row (a starting point for new rows)")
    args = parser.parse_args()
    if args.inventory:
        print(inventory(args.inventory), end="")
        return 0
    if args.figures:
        for fig in find_figures(documents()[args.figures]):
            print(fig.where() if fig.table is None else f"{fig.doc}:{fig.line}: {fig.number!r} in table {fig.table[:50]!r}")
        return 0
    problems = check()
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)" if problems else "every measured figure is backed by a results file")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
