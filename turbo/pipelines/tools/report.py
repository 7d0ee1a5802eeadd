"""The run report: one report.html that opens from disk, with matplotlib figures of the logged curves.

Every numeric key of metrics.jsonl gets a figure (a train key and its eval_ twin share one): the loss,
learning rate and gradient norm first, then the method's own curves (DPO rewards and margins, KTO KL,
reward-model accuracy, classification metrics, RL rewards), then the cherry-pick metrics. Each figure is a
PNG in report_files/ (embedded in the page and linked) with the plotted arrays beside it as JSON. A figure
of one panel is a card in a grid; a figure of several (a reward's mean and std, the cherry-pick metrics of
a dataset) spans the page's width, so each panel keeps a readable size. The caption under a figure is its
only title. The page also holds the cherry-pick answers per step, the settings as run and the dataset
summary (with the token-length percentiles as a table). Given a second run, every figure overlays both.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turbo.errors import TurboError
from turbo.io import atomic_open, write_json

METRICS = "metrics.jsonl"
REPORT = "report.html"
NOT_CURVES = {
    "step",
    "epoch",
    "total_flos",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
    "train_tokens_per_second",  # transformers' average since the start: the throughput curve, smoothed
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
    "num_input_tokens_seen",
}
FIRST = ["loss", "learning_rate", "grad_norm"]
# logged key -> the name the page gives it, where the key's own name says too little
RENAMED = {"tokens_per_second": "throughput"}
CAPTIONS = {  # a line under the caption, saying what is plotted
    "throughput": "input tokens trained on per second of wall time between two logged steps "
    "(evaluations in between included)",
}
PANEL_COLUMNS = 3  # panels per row of a wide figure
ANSWERS_SHOWN = 200  # cherry-pick rows per step in the page


@dataclass
class Run:
    folder: Path
    rows: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    data_report: dict[str, Any] = field(default_factory=dict)
    cherry_picks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.folder.name


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_run(folder: Path) -> Run:
    folder = Path(folder)
    if not (folder / METRICS).is_file():
        raise TurboError(f"{folder}: no {METRICS}; give the experiment folder (log_path) of a train run")
    run = Run(folder, _read_jsonl(folder / METRICS))
    for name, attribute in (("experiment_settings.json", "settings"), ("data_report.json", "data_report")):
        if (folder / name).is_file():
            setattr(run, attribute, json.loads((folder / name).read_text(encoding="utf-8")))
    for path in (folder / "cherry_picks").glob("step_*.jsonl"):
        step = path.stem.split("_", 1)[1]
        if step.isdigit():
            run.cherry_picks[int(step)] = _read_jsonl(path)
    return run


def curve_name(key: str) -> str:
    """The panel a key belongs to: eval_x and x share one."""
    return key[len("eval_") :] if key.startswith("eval_") else key


def figure_name(panel: str) -> str:
    """The figure a panel belongs to: cherry_pick/<dataset>/<metric> -> cherry_pick/<dataset>;
    rewards/margins -> rewards; loss -> loss."""
    return panel.rsplit("/", 1)[0] if "/" in panel else panel


Series = dict[str, tuple[list[float], list[float]]]  # series key -> (steps, values)


def curves(run: Run) -> dict[str, dict[str, Series]]:
    """figure -> panel -> series, in the order the figures are shown."""
    found: dict[str, dict[str, Series]] = {}
    for row in run.rows:
        step = row.get("step")
        for key, value in row.items():
            if key in NOT_CURVES or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            key = RENAMED.get(key, key)
            panel = curve_name(key)
            series = found.setdefault(figure_name(panel), {}).setdefault(panel, {})
            xs, ys = series.setdefault(key, ([], []))
            xs.append(float(step if step is not None else len(xs)))
            ys.append(float(value))

    for name in [n for n in found if n not in FIRST and not n.startswith("cherry_pick/")]:
        panels = found[name]
        if len(panels) == 1 and all(key.startswith("eval_") for series in panels.values() for key in series):
            found.setdefault("evaluation", {}).update(found.pop(name))  # eval-only metrics: one figure

    def order(name: str) -> tuple[int, int, str]:
        if name in FIRST:
            return (0, FIRST.index(name), name)
        return (2 if name.startswith("cherry_pick/") else 1, 0, name)

    return {name: found[name] for name in sorted(found, key=order)}


def file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", name).strip("_") or "curve"


def panel_title(name: str, panel: str, panels: dict[str, Series]) -> str | None:
    """The title drawn above a panel: none when the figure has one panel (the caption names it), else the
    panel's name within the figure (reward/mean in the figure reward: mean)."""
    return None if len(panels) == 1 else panel.removeprefix(f"{name}/")


def plot(name: str, panels: dict[str, Series], folder: Path) -> Path:
    """Write folder/<name>.png (one panel per curve, PANEL_COLUMNS a row) and, beside it, <name>.json with
    exactly the plotted arrays and the titles drawn: {"name", "panel_titles": {panel: title or null},
    "panels": {panel: {series: {"x": [...], "y": [...]}}}}. The figure's own title is the page's caption,
    never drawn in the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    stem = file_stem(name)
    columns = min(len(panels), PANEL_COLUMNS)
    rows = -(-len(panels) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.2 * rows), dpi=100, squeeze=False)
    for axes in grid.flat[len(panels) :]:
        axes.set_visible(False)
    titles = {panel: panel_title(name, panel, panels) for panel in panels}
    for axes, (panel, series) in zip(grid.flat, panels.items(), strict=False):
        for label, (xs, ys) in series.items():
            # a run's curve of the panel's own key is named by the run alone ("sft", not "sft: loss")
            shown = label.removesuffix(f": {panel}")
            axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=shown)
        if titles[panel] is not None:
            axes.set_title(titles[panel], fontsize="medium")
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        steps = {x for xs, _ in series.values() for x in xs}
        if len(steps) == 1:  # one logged step: a window of whole steps around it
            axes.set_xlim(min(steps) - 1, min(steps) + 1)
        axes.grid(alpha=0.3)
        if len(series) > 1:  # one curve needs no legend: the caption or the panel title names it
            axes.legend(fontsize="small")
    figure.tight_layout()
    png = folder / f"{stem}.png"
    partial = png.with_name(f".{png.name}.tmp")
    figure.savefig(partial, format="png")
    partial.replace(png)
    plt.close(figure)
    data = {p: {k: {"x": x, "y": y} for k, (x, y) in series.items()} for p, series in panels.items()}
    write_json(folder / f"{stem}.json", {"name": name, "panel_titles": titles, "panels": data})
    return png


def figure_html(name: str, panels: dict[str, Series], png: Path, files: Path) -> str:
    """A figure of the page: the image (embedded, linked to its file) and the caption that titles it;
    a figure of several panels spans the page."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    link = html.escape(f"{files.name}/{png.name}")
    image = f'<a href="{link}"><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></a>'
    title = figure_title(name, panels)
    note = f"<span class='note'>{html.escape(CAPTIONS[title])}</span>" if title in CAPTIONS else ""
    kind = "wide" if len(panels) > 1 else "card"
    return f"<figure class='{kind}'>{image}<figcaption>{html.escape(title)}{note}</figcaption></figure>"


def figure_title(name: str, panels: dict[str, Series]) -> str:
    """The caption: the figure's name, or its one panel's (rollout/logp_gap in the figure rollout)."""
    return next(iter(panels)) if len(panels) == 1 else name


def _prompt_text(row: dict[str, Any]) -> str:
    messages = row.get("messages") or []
    while messages and messages[-1].get("role") in ("bot", "assistant"):
        messages = messages[:-1]
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, dict))


def _answers_table(run: Run) -> str:
    if not run.cherry_picks:
        return "<p>No cherry-picks in this run.</p>"
    parts = []
    for step in sorted(run.cherry_picks):
        rows = run.cherry_picks[step]
        cells = []
        for row in rows[:ANSWERS_SHOWN]:
            answers = "<hr>".join(html.escape(str(a.get("content", ""))) for a in row.get("answers", []))
            metrics = ", ".join(
                f"{k}={v:.4g}" for k, v in (row.get("metrics") or {}).items() if v is not None
            )
            cells.append(
                f"<tr><td>{html.escape(str(row.get('dataset_name', '')))}</td>"
                f"<td><pre>{html.escape(_prompt_text(row))}</pre></td>"
                f"<td>{answers}</td><td>{html.escape(metrics)}</td></tr>"
            )
        parts.append(
            f"<details{' open' if step == max(run.cherry_picks) else ''}><summary>step {step} "
            f"({len(rows)} prompts)</summary><table><tr><th>dataset</th><th>prompt</th><th>answers</th>"
            f"<th>metrics</th></tr>{''.join(cells)}</table></details>"
        )
    return "".join(parts)


def _percentile_names(run: Run) -> list[str]:
    names = {
        str(name)
        for sources in run.data_report.values()
        for source in sources
        for name in (source.get("token_length_percentiles") or {})
    }
    return sorted(names, key=lambda name: float(name) if name.replace(".", "", 1).isdigit() else float("inf"))


def _data_table(run: Run) -> str:
    """One row per split and source: what was read, kept and dropped, and the token-length percentiles
    (tokens per sample), one column each."""
    if not run.data_report:
        return "<p>No data_report.json.</p>"
    percentiles = _percentile_names(run)
    rows = []
    for split, sources in run.data_report.items():
        for source in sources:
            dropped = ", ".join(f"{k}: {v}" for k, v in (source.get("dropped") or {}).items()) or "-"
            lengths = source.get("token_length_percentiles") or {}
            cells = [
                f"<td>{html.escape(str(v))}</td>"
                for v in (split, source.get("name"), source.get("read"), source.get("sampled"))
            ]
            cells += [
                f"<td class='number'>{html.escape(str(v))}</td>"
                for v in (source.get("used"), source.get("truncated"))
            ]
            cells.append(f"<td>{html.escape(dropped)}</td>")
            cells += [f"<td class='number'>{html.escape(str(lengths.get(p, '-')))}</td>" for p in percentiles]
            rows.append(f"<tr>{''.join(cells)}</tr>")
    counts = ("split", "source", "read", "sampled", "used", "truncated", "dropped")
    head = "".join(f"<th rowspan='2'>{h}</th>" for h in counts)
    if percentiles:
        head += f"<th colspan='{len(percentiles)}'>tokens per sample, percentile</th>"
    names = "".join(f"<th>{'max' if p == '100' else html.escape(p)}</th>" for p in percentiles)
    return f"<table class='data'><tr>{head}</tr><tr>{names}</tr>{''.join(rows)}</table>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:12px;grid-auto-flow:dense}
figure{margin:0;border:1px solid #ddd;padding:6px}figure.wide{grid-column:1/-1}
figure img{width:100%;display:block}figure.wide img{width:auto;max-width:100%;margin:auto}
figcaption{font-weight:bold;text-align:center;margin-top:4px}
figcaption .note{display:block;font-weight:normal;font-size:12px;color:#555}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}
td.number{text-align:right}pre{white-space:pre-wrap;margin:0}"""


def write_report(folder: Path, other: Path | None = None, out: Path | None = None) -> Path:
    """report.html in the run folder (or `out`); with `other`, both runs overlaid on every figure."""
    run = read_run(Path(folder))
    runs = [run] + ([read_run(Path(other))] if other is not None else [])
    if out is None:
        out = run.folder / (REPORT if other is None else f"report_vs_{Path(other).name}.html")
    files = out.with_name(out.stem + "_files") if out.name != REPORT else out.with_name("report_files")
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    merged: dict[str, dict[str, Series]] = {}
    for each in runs:
        for name, panels in curves(each).items():
            for panel, series in panels.items():
                for key, values in series.items():
                    label = f"{each.name}: {key}" if other is not None else key
                    merged.setdefault(name, {}).setdefault(panel, {})[label] = values
    figures = [figure_html(name, panels, plot(name, panels, files), files) for name, panels in merged.items()]
    title = " vs ".join(each.name for each in runs)
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Curves</h2>",
        f"<div class='figures'>{''.join(figures)}</div>",
    ]
    for each in runs:
        heading = f" ({html.escape(each.name)})" if other is not None else ""
        sections += [
            f"<h2>Cherry-picks{heading}</h2>",
            _answers_table(each),
            f"<h2>Data{heading}</h2>",
            _data_table(each),
            f"<h2>Settings{heading}</h2>",
            f"<pre>{html.escape(json.dumps(each.settings, indent=2))}</pre>",
        ]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
    with atomic_open(out) as handle:
        handle.write(page)
    return out
