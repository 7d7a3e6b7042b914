"""The self-contained HTML report: verdicts, measured-vs-published plots, history, environment, sources.

One file with inline CSS and SVG, no scripts or external assets, so it can be attached to a CI run, mailed,
or opened years later and still show the same thing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from device_tests import verdicts as V
from device_tests.baselines import BaselineSet
from device_tests.evaluate import Evaluation
from device_tests.history import history_key
from device_tests.policy import Policy
from device_tests.stats import measured_metrics
from device_tests.svg import bar_chart, line_chart

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{border:1px solid #d0d7de;padding:4px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;white-space:nowrap}
.v{font-weight:600;padding:1px 6px;border-radius:10px;white-space:nowrap}
.v-pass{background:#dafbe1;color:#116329}.v-fail,.v-error{background:#ffebe9;color:#a40e26}
.v-unstable{background:#fff8c5;color:#7d4e00}.v-nv{background:#eaeef2;color:#57606a}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:10px 0}
.small{font-size:12px;color:#57606a}code{font-size:12px}details{margin:6px 0}
.legend span{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def verdict_badge(verdict: str) -> str:
    css = {V.PASS: "v-pass", V.FAIL: "v-fail", V.ERROR: "v-error", V.UNSTABLE: "v-unstable"}.get(verdict, "v-nv")
    return f'<span class="v {css}">{_e(verdict)}</span>'


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _cv(value: float | None) -> str:
    return "" if value is None else f" <span class='small'>(cv {value * 100:.1f}%)</span>"


def _title(ev: Evaluation) -> str:
    r = ev.result
    precision = f" · {r.precision}" if r.precision else ""
    return f"{r.bundle_file}{precision}"


def _metric_cell(measured: dict[str, Any], name: str, digits: int = 1) -> str:
    s = measured.get(name)
    return f'<td class="num">{_num(s.median if s else None, digits)}{_cv(s.cv if s else None)}</td>'


def _checks_cell(ev: Evaluation, kind: str) -> str:
    lines = [f"{verdict_badge(c.verdict)} <span class='small'>{_e(c.message)}</span>" for c in ev.check(kind)]
    return "<br>".join(lines) or "–"


def verdict_table(evaluations: Sequence[Evaluation]) -> str:
    head = (
        "<tr><th>Bundle</th><th>Precision</th><th>Device</th><th>Prefill tok/s</th><th>Decode tok/s</th>"
        "<th>TTFT s</th><th>Peak RSS MiB</th><th>vs published</th><th>vs last good run</th><th>Verdict</th></tr>"
    )
    rows = []
    for ev in evaluations:
        r, m = ev.result, measured_metrics(ev.result)
        bundle = (
            f"<code>{_e(r.bundle_file)}</code><br><span class='small'>{_e(r.model)} · {_e(r.quantization)} · "
            f"ekv{r.ekv} · {r.prefill_tokens}/{r.decode_tokens} tokens · {len(r.samples)} runs + "
            f"{r.warmup_runs} warm-up</span>"
        )
        device = (
            f"{_e(r.environment.device)}<br><span class='small'>{_e(r.environment.surface)} · "
            f"{_e(r.environment.backend)}</span>"
        )
        rows.append(
            f"<tr><td>{bundle}</td><td>{_e(r.precision or '–')}</td><td>{device}</td>"
            f"{_metric_cell(m, 'prefill_tokens_per_s')}{_metric_cell(m, 'decode_tokens_per_s')}"
            f"{_metric_cell(m, 'ttft_s', 3)}{_metric_cell(m, 'cpu_rss_mib', 0)}"
            f"<td>{_checks_cell(ev, 'baseline')}</td><td>{_checks_cell(ev, 'history')}</td>"
            f"<td>{verdict_badge(ev.verdict)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def comparison_charts(ev: Evaluation, policy: Policy) -> str:
    """Measured median beside every published figure for this bundle (own device dark, others light)."""
    measured = measured_metrics(ev.result)
    own = {c.reference for c in ev.check("baseline") if c.metrics}
    charts = []
    for name in ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_s", "cpu_rss_mib", "model_size_mib"):
        rule = policy.metrics.get(name)
        summary = measured.get(name)
        bars: list[tuple[str, float, str]] = []
        if summary:
            bars.append((f"measured ({ev.result.environment.device})"[:40], summary.median, "measured"))
        for b in ev.references:
            if name in b.published:
                kind = "published" if b.id in own else "other device"
                bars.append(
                    (f"{b.device.name} {b.backend.upper()} {b.precision}".strip()[:40], b.published[name], kind)
                )
        if len(bars) > (1 if summary else 0):
            charts.append(bar_chart(rule.label if rule else name, bars, rule.unit if rule else ""))
        elif name in ("prefill_tokens_per_s", "decode_tokens_per_s") and summary:
            charts.append(
                bar_chart(f"{rule.label if rule else name} (no published figure)", bars, rule.unit if rule else "")
            )
    return f"<div class='charts'>{''.join(charts)}</div>"


def history_charts(ev: Evaluation, history: Sequence[dict[str, Any]]) -> str:
    key = history_key(ev.result)
    entries = [h for h in history if h.get("key") == key]
    if len(entries) < 2:
        return "<p class='small'>History: this is the first recorded run of this bundle on this environment.</p>"
    charts = []
    for name, label in (
        ("prefill_tokens_per_s", "Prefill history (tok/s)"),
        ("decode_tokens_per_s", "Decode history (tok/s)"),
    ):
        points = [(h["recorded_utc"], h["medians"].get(name)) for h in entries[-30:]]
        charts.append(line_chart(label, points, "tok/s"))
    return f"<div class='charts'>{''.join(charts)}</div>"


def environment_table(evaluations: Sequence[Evaluation]) -> str:
    seen: dict[str, Any] = {}
    for ev in evaluations:
        env = ev.result.environment
        seen.setdefault(f"{env.surface}|{env.device}|{env.browser}|{env.threads}", env)
    blocks = []
    for env in seen.values():
        rows = [
            ("surface", env.surface),
            ("device", env.device),
            ("OS", env.os),
            ("backend", env.backend),
            ("browser", env.browser),
            ("threads", env.threads),
            ("thermal", env.thermal),
        ]
        rows += [(f"adapter.{k}", v) for k, v in (env.adapter or {}).items() if k != "features"]
        if env.adapter and env.adapter.get("features") is not None:
            rows.append(("adapter.features", ", ".join(map(str, env.adapter["features"])) or "(none)"))
        rows += [(k, v) for k, v in (env.extra or {}).items() if k not in ("actual_tokens",)]
        body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v not in (None, "", {}))
        blocks.append(f"<table>{body}</table>")
    return "".join(blocks)


def sources_list(baselines: BaselineSet) -> str:
    items = "".join(
        f"<li><a href='{_e(s.url)}'>{_e(s.title)}</a><br><span class='small'>{_e(s.notes)}</span></li>"
        for s in baselines.sources.values()
    )
    return f"<ul>{items}</ul>"


def samples_details(ev: Evaluation) -> str:
    r = ev.result
    rows = "".join(
        f"<tr><td>{i + 1}</td><td class='num'>{_num(s.prefill_tokens_per_s)}</td><td class='num'>"
        f"{_num(s.decode_tokens_per_s)}</td><td class='num'>{_num(s.ttft_s, 4)}</td>"
        f"<td class='num'>{_num(s.init_s, 4)}</td></tr>"
        for i, s in enumerate(r.samples)
    )
    return (
        f"<details><summary>Raw samples ({len(r.samples)}), sha256 <code>{_e(r.bundle_sha256[:16])}…</code></summary>"
        f"<table><tr><th>run</th><th>prefill tok/s</th><th>decode tok/s</th><th>TTFT s</th><th>init s</th></tr>"
        f"{rows}</table>{'<p>' + _e(r.message) + '</p>' if r.message else ''}</details>"
    )


def render_report(
    evaluations: Sequence[Evaluation],
    *,
    baselines: BaselineSet,
    policy: Policy,
    history: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> str:
    counts: dict[str, int] = {}
    for ev in evaluations:
        counts[ev.verdict] = counts.get(ev.verdict, 0) + 1
    overall = V.overall(ev.verdict for ev in evaluations) if evaluations else V.NO_BASELINE
    summary = " ".join(f"{verdict_badge(v)} × {n}" for v, n in sorted(counts.items()))
    tolerances = ", ".join(
        f"{r.label} {r.tolerance * 100:.0f}% ({'gate' if r.gate else 'info'})" for r in policy.metrics.values()
    )
    sections = []
    for ev in evaluations:
        sections.append(
            f"<div class='card'><h3>{_e(_title(ev))} — {verdict_badge(ev.verdict)}</h3>"
            f"{comparison_charts(ev, policy)}{history_charts(ev, history)}{samples_details(ev)}</div>"
        )
    legend = (
        "<p class='legend small'>Bars:<span style='background:#1f6feb'></span>measured median"
        "<span style='background:#57606a'></span>published, same device and conditions"
        "<span style='background:#b6bcc4'></span>published on another device (no verdict)</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gemma-edge device lab: {_e(meta.get("surface"))}</title>
<style>{_CSS}</style></head><body>
<h1>gemma-edge device lab — {_e(meta.get("surface"))}: {verdict_badge(overall)}</h1>
<p>{summary}</p>
<p class="small">Generated {_e(meta.get("generated_utc"))} · command <code>{_e(meta.get("command"))}</code><br>
Protocol: {_e(meta.get("warmup"))} warm-up + {_e(meta.get("runs"))} measured runs,
{_e(meta.get("prefill_tokens"))} prefill / {_e(meta.get("decode_tokens"))} decode tokens, median; spread limit cv ≤
{policy.cv_limit * 100:.0f}% (wider: "unstable"); tolerances: {_e(tolerances)}. A published figure is used only for
the same model, recipe, KV cache, backend and precision on its own device; otherwise "no baseline" or
"different device: no verdict".</p>
<h2>Verdicts</h2>{verdict_table(evaluations)}
<h2>Measured vs published, per bundle and precision</h2>{legend}{"".join(sections)}
<h2>Environment</h2>{environment_table(evaluations)}
<h2>Sources of the published figures</h2>{sources_list(baselines)}
<p class="small">Baselines file: {_e(baselines.path.name)} · history: {_e(meta.get("history_path"))}</p>
</body></html>
"""
