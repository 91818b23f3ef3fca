// The pictures of a finished job, a schedule's nights and a sweep (Charts, charts.js), and the
// report's settings that the summary list leaves out. Uses app.js's helpers ($, el, num, duration).
"use strict";

// the harness's headline metric per task: acc_norm where it reports one
function headline(r) {
  return r.pruned && "acc_norm" in r.pruned ? "acc_norm" : "acc";
}

function drawJobCharts(report) {
  const box = $("#job-charts");
  const layers = report.layers || [];
  const points = (key) => layers.map((l, i) => ({ x: i + 1, y: l[key], label: l.name }));
  const charts = [
    Charts.line("layer-error", { title: "Relative reconstruction error per layer", yLabel: "rel. error",
                                 xLabel: "layer (depth order)", log: true, series: [{ name: "rel. error", points: points("rel_error") }] }),
    Charts.line("layer-seconds", { title: "Seconds per layer", yLabel: "s", xLabel: "layer (depth order)",
                                   series: [{ name: "seconds", points: points("seconds") }] }),
    Charts.line("layer-sparsity", { title: "Sparsity per layer", yLabel: "zeros", xLabel: "layer (depth order)",
                                    series: [{ name: "target", points: points("target") },
                                             { name: "achieved", points: points("sparsity") }] }),
  ];
  const ppl = Object.entries(report.perplexity || {});
  if (ppl.length) {
    charts.push(Charts.bars("perplexity", { title: "Perplexity, dense and pruned", yLabel: "ppl", groups: ppl.map(([n]) => n),
                                            series: [{ name: "dense", values: ppl.map(([, r]) => r.dense) },
                                                     { name: "pruned", values: ppl.map(([, r]) => r.pruned) }] }));
  }
  const tasks = Object.entries(report.zero_shot || {});
  if (tasks.length) {
    charts.push(Charts.bars("zero-shot", { title: "Zero-shot accuracy, dense and pruned", yLabel: "accuracy",
                                           groups: tasks.map(([n]) => n),
                                           series: [{ name: "dense", values: tasks.map(([, r]) => (r.dense ? r.dense[headline(r)] : null)) },
                                                    { name: "pruned", values: tasks.map(([, r]) => r.pruned[headline(r)]) }] }));
  }
  box.replaceChildren(...charts);
  box.hidden = false;
}

// what the summary list does not show: the method's options, where the time went, quantization
function renderReportDetails(report) {
  const dl = $("#summary");
  const options = Object.entries(report.options || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const t = report.timings || {};
  const spent = [["load", t.load], ["dense eval", t.eval_dense], ["prune", t.prune], ["pruned eval", t.eval_pruned]]
    .filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k} ${duration(v)}`).join(", ");
  const q = report.quantization;
  const items = [["options", options || "defaults"], ["time", spent], ["dtype", report.dtype_stored || report.dtype]];
  if (q) items.push(["quantization", `int${q.bits}${q.group_size ? `, groups of ${q.group_size}` : ", per channel"}` +
                                     (q.bits_per_weight ? `, ${num(q.bits_per_weight, 2)} bits/weight` : "")]);
  if (report.peak_memory && report.peak_memory.host_bytes) items.push(["peak memory", bytes(report.peak_memory.host_bytes)]);
  for (const [k, v] of items) {
    const dd = el("dd", v);
    dd.dataset.detail = k;
    dl.append(el("dt", k), dd);
  }
}

// a schedule's nights: pruned perplexity per dataset over time; nights that broke a gate marked
function drawTrend(schedule, jobs) {
  const box = $("#trend-box");
  const nights = jobs.filter((j) => j.result && j.result.perplexity).reverse();  // oldest first
  box.hidden = !nights.length;
  if (!nights.length) return;
  const datasets = [...new Set(nights.flatMap((j) => Object.keys(j.result.perplexity)))];
  const labelOf = (j) => new Date(j.scheduled_for || j.created_at).toLocaleDateString([], { month: "short", day: "numeric" });
  const series = datasets.map((name) => ({
    name,
    points: nights.filter((j) => j.result.perplexity[name]).map((j) => ({
      x: nights.indexOf(j) + 1, y: j.result.perplexity[name].pruned, label: `${labelOf(j)} ${j.id}`,
      mark: j.status === "gate_failed" ? "gate failed" : null,
    })),
  }));
  const chart = Charts.line("trend", { title: `${schedule.name}: pruned perplexity per night (red: a gate failed)`,
                                       yLabel: "ppl", series, xLabels: (x) => labelOf(nights[x - 1]), xNumeric: true });
  const verdicts = el("ul", null, "nights");
  for (const j of nights.slice(-7).reverse()) {
    const gates = j.result.gates;
    const verdict = gates ? (gates.passed ? "gates passed" : "gate failed") : "no gates";
    const li = el("li", `${labelOf(j)} · ${j.id} · ${j.status} · ${verdict}`, j.status === "gate_failed" ? "gate-fail" : "");
    li.dataset.id = j.id;
    verdicts.append(li);
  }
  box.replaceChildren(el("h3", `Nightly trend: ${schedule.name}`), chart, verdicts);
}

// a sweep: pruned perplexity against achieved sparsity, per dataset, and one row per point
function drawSweep(report) {
  const datasets = [...new Set(report.points.flatMap((p) => Object.keys(p.perplexity || {})))];
  const series = datasets.map((name) => ({
    name,
    points: report.points.filter((p) => p.perplexity[name])
      .map((p) => ({ x: p.sparsity_achieved, y: p.perplexity[name].pruned, label: p.setting })),
  }));
  const chart = Charts.line("sweep", { title: "Perplexity against sparsity", yLabel: "ppl", xLabel: "zeros", series,
                                       log: true, xNumeric: true, xLabels: (x) => `${Math.round(x * 100)}%` });
  $("#job-charts").replaceChildren(chart);
  $("#sweep tbody").replaceChildren(...report.points.map((p) => {
    const ppl = Object.entries(p.perplexity).map(([n, r]) => `${n} ${num(r.dense, 2)} → ${num(r.pruned, 2)}`).join(", ");
    const zs = p.zero_shot_mean && p.zero_shot_mean.pruned !== null ? num(p.zero_shot_mean.pruned, 3) : "";
    const tr = row([p.setting, el("td", `${num(p.sparsity_achieved * 100, 1)}%`, "num"), ppl, el("td", zs, "num"),
                    el("td", duration(p.seconds_total), "num"), el("td", `${p.path}/model`)]);
    tr.dataset.setting = p.setting;
    return tr;
  }));
}

// -- compare: jobs side by side (GET /v1/jobs/compare) -----------------------------------------
function showCompareButton() {
  const n = state.compare.size;
  const b = $("#compare-button");
  b.hidden = n < 2;
  b.textContent = `Compare ${n} jobs`;
}

function compareLines(rows) {
  const datasets = [...new Set(rows.flatMap((r) => Object.keys(r.perplexity)))];
  const lines = [
    ["status", (r) => r.status], ["model", (r) => r.model], ["method", (r) => r.method],
    ["target", (r) => target(r)], ["profile", (r) => profileText(r.sparsity_profile)],
    ["options", (r) => Object.entries(r.options || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "defaults"],
    ["quantization", (r) => (r.quantize ? `int${r.quantize.bits}${r.quantize.group_size ? `/g${r.quantize.group_size}` : ""}` : "none")],
    ["calibration", (r) => `${r.calibration.source} ${r.calibration.nsamples} × ${r.calibration.seqlen}`],
    ["zeros", (r) => (r.sparsity_achieved === null || r.sparsity_achieved === undefined ? "" : `${num(r.sparsity_achieved * 100, 2)}%`)],
    ...datasets.map((d) => [`ppl ${d}`, (r) => (r.perplexity[d] ? `${num(r.perplexity[d].pruned, 2)} (×${num(r.perplexity[d].ratio, 3)})` : "")]),
    ["zero-shot mean acc", (r) => num(r.zero_shot.mean_acc.pruned, 3)],
    ["took", (r) => (r.seconds_total ? duration(r.seconds_total) : "")], ["device", (r) => r.device],
    ["gates", (r) => (r.gates ? (r.gates.passed ? "passed" : "failed") : "none")],
  ];
  return { lines, datasets };
}

async function compareJobs(ids) {
  let page;
  try {
    page = await api(`/v1/jobs/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  } catch (err) {
    return banner(`Could not compare: ${err.message}`);
  }
  const rows = page.data;
  const { lines, datasets } = compareLines(rows);
  $("#compare-table thead tr").replaceChildren(el("th", ""), ...rows.map((r) => el("th", r.id)));
  $("#compare-table tbody").replaceChildren(...lines.map(([name, cell]) => {
    const tr = row([el("th", name), ...rows.map((r) => el("td", cell(r)))]);
    tr.dataset.line = name;
    return tr;
  }));
  const charts = datasets.length ? [Charts.bars("compare-ppl", {
    title: "Pruned perplexity", yLabel: "ppl", groups: datasets,
    series: rows.map((r) => ({ name: r.id, values: datasets.map((d) => (r.perplexity[d] ? r.perplexity[d].pruned : null)) })),
  })] : [];
  $("#compare-charts").replaceChildren(...charts);
  $("#detail").hidden = true;
  $("#new-job").hidden = true;
  $("#compare").hidden = false;
}
