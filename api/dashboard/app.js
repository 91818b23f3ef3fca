// Topiary dashboard: a thin client of the public REST API (/v1), nothing the API does not offer.
// The API key stays in this browser's localStorage and goes out only as an Authorization header.
// Every value from the server is written with textContent, never parsed as HTML.
"use strict";

const TERMINAL = new Set(["succeeded", "gate_failed", "failed", "cancelled"]);
const FINISHED_WORK = new Set(["succeeded", "gate_failed"]);  // a report and a checkpoint to show
const state = { key: localStorage.getItem("topiary.key") || "", after: null, selected: null, stream: null, schedule: null,
                webhook: null, compare: new Set() };
const $ = (sel) => document.querySelector(sel);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function button(text, onClick) {
  const b = el("button", text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function num(value, digits) {
  return value === null || value === undefined ? "" : Number(value).toFixed(digits);
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

// "48 s", "15 min", "23 min 48 s", "2 h 05 min": seconds as a person reads them
function duration(seconds, rough = false) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    return rough || s % 60 === 0 ? `${Math.round(s / 60)} min` : `${m} min ${s % 60} s`;
  }
  const h = Math.floor(s / 3600);
  return `${h} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function banner(message) {
  const box = $("#banner");
  box.textContent = message || "";
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({ title: response.statusText }));
  if (!response.ok) throw new ApiError(body);
  return body;
}

// -- jobs list --------------------------------------------------------------------------------
function profileText(profile) {
  // "owl (M 5, λ 0.08), 2 rules"; uniform without rules says so plainly
  if (!profile) return "uniform";
  let text = profile.kind;
  if (profile.kind === "owl") text += ` (M ${profile.owl_m}, λ ${profile.owl_lambda})`;
  const n = (profile.rules || []).length;
  if (n) text += `, ${n} rule${n > 1 ? "s" : ""}: ` + profile.rules.map((r) => `${r.match}=${r.sparsity}`).join(", ");
  return text;
}

function target(spec) {
  if (!spec) return "";
  if (spec.sweep) return `sweep ${spec.sweep.join(", ")}`;
  return spec.pattern && spec.pattern !== "unstructured" ? spec.pattern : `${Math.round(spec.sparsity * 100)}%`;
}

function jobRow(job) {
  const status = el("td");
  status.append(el("span", job.status, `status ${job.status}`));
  const progress = el("td");
  if (!TERMINAL.has(job.status) && job.progress && job.progress.percent !== undefined) {
    const bar = el("progress");
    bar.max = 100;
    bar.value = job.progress.percent;
    progress.append(bar);
  } else if (FINISHED_WORK.has(job.status) && job.result && job.result.sweep) {
    progress.textContent = `${job.result.sweep.length} points`;
  } else if (FINISHED_WORK.has(job.status) && job.result) {
    progress.textContent = `${num(job.result.sparsity_achieved * 100, 1)}% zeros`;
  }
  const pick = el("td");
  const box = el("input");
  box.type = "checkbox";
  box.title = "compare";
  box.checked = state.compare.has(job.id);
  box.addEventListener("click", (event) => event.stopPropagation());
  box.addEventListener("change", () => {
    if (box.checked) state.compare.add(job.id); else state.compare.delete(job.id);
    showCompareButton();
  });
  pick.append(box);
  const tr = row([pick, el("td", job.id), status, job.model, job.method, target(job.spec), progress,
                  when(job.created_at)]);
  tr.dataset.id = job.id;
  if (job.id === state.selected) tr.classList.add("selected");
  tr.addEventListener("click", () => selectJob(job.id));
  return tr;
}

async function loadJobs(append = false) {
  if (!state.key) return;
  const params = new URLSearchParams({ limit: "20" });
  const status = $("#status-filter").value;
  if (status) params.set("status", status);
  if (state.schedule) params.set("schedule_id", state.schedule.id);
  if (append && state.after) params.set("after", state.after);
  try {
    const page = await api(`/v1/jobs?${params}`);
    const body = $("#jobs tbody");
    if (!append) body.replaceChildren();
    for (const job of page.data) body.append(jobRow(job));
    state.after = page.last_id;
    $("#more").hidden = !page.has_more;
    banner("");
    if (!append) await loadTrend();
  } catch (err) {
    banner(`Could not list jobs: ${err.message}`);
  }
}

// -- schedules (nightly compression) -----------------------------------------------------------
async function loadTrend() {
  const schedule = state.schedule;
  if (!schedule) {
    $("#trend-box").hidden = true;
    return;
  }
  const page = await api(`/v1/jobs?schedule_id=${encodeURIComponent(schedule.id)}&limit=100`);
  if (state.schedule === schedule) drawTrend(schedule, page.data);
}

function filterBySchedule(schedule) {
  state.schedule = schedule;
  state.after = null;
  const chip = $("#schedule-filter");
  chip.hidden = !schedule;
  chip.querySelector("span").textContent = schedule ? `schedule ${schedule.name}` : "";
  loadJobs();
}

// pause or resume a schedule or a webhook endpoint (both PATCH {enabled}), then redraw its list
async function setEnabled(path, label, enabled, reload) {
  try {
    await api(path, {
      method: "PATCH", body: JSON.stringify({ enabled }), headers: { "Content-Type": "application/json" },
    });
    await reload();
  } catch (err) {
    banner(`Could not ${enabled ? "resume" : "pause"} ${label}: ${err.message}`);
  }
}

function scheduleRow(sch) {
  const last = el("td");
  if (sch.last_job_id) last.append(button(sch.last_job_id, () => selectJob(sch.last_job_id)));
  const actions = el("td");
  actions.append(button(sch.enabled ? "pause" : "resume",
                        () => setEnabled(`/v1/schedules/${sch.id}`, sch.name, !sch.enabled, loadSchedules)),
                 button("jobs", () => filterBySchedule(sch)));
  const tr = row([sch.name, `${sch.cron} (${sch.timezone})`, `${sch.spec.method} ${target(sch.spec)} ${sch.spec.model}`,
                  sch.enabled && sch.next_fire_at ? when(sch.next_fire_at) : "paused", last, actions]);
  tr.dataset.id = sch.id;
  tr.classList.toggle("paused", !sch.enabled);
  return tr;
}

// one GET of a list resource into a table, with its "none yet" line; returns the rows' data
async function fillTable(path, table, empty, rowFn, what) {
  if (!state.key) return null;
  try {
    const page = await api(path);
    $(`${table} tbody`).replaceChildren(...page.data.map(rowFn));
    $(empty).hidden = page.data.length > 0;
    return page.data;
  } catch (err) {
    banner(`Could not list ${what}: ${err.message}`);
    return null;
  }
}

async function loadSchedules() {
  await fillTable("/v1/schedules", "#schedules", "#no-schedules", scheduleRow, "schedules");
}

// -- webhooks (where job events are POSTed) ---------------------------------------------------
function webhookRow(hook) {
  const actions = el("td");
  actions.append(button(hook.enabled ? "pause" : "resume",
                        () => setEnabled(`/v1/webhook_endpoints/${hook.id}`, hook.url, !hook.enabled, loadWebhooks)),
                 button("deliveries", () => showDeliveries(hook)));
  const tr = row([hook.url, hook.events.join(", "), hook.enabled ? "active" : "paused", actions]);
  tr.dataset.id = hook.id;
  tr.classList.toggle("paused", !hook.enabled);
  return tr;
}

async function loadWebhooks() {
  const hooks = await fillTable("/v1/webhook_endpoints", "#webhooks", "#no-webhooks", webhookRow, "webhooks");
  if (!hooks) return;
  const open = state.webhook && hooks.find((h) => h.id === state.webhook.id);
  if (open) await showDeliveries(open);  // keep the open delivery log current
  else $("#deliveries-box").hidden = true;
}

// -- workers (admin keys only) -----------------------------------------------------------------
function workerRow(w) {
  const device = w.device === "cuda" ? `${w.gpu_name || "GPU"} (${bytes(w.gpu_memory_bytes || 0)})` : w.device;
  const stateCell = el("td");
  if (w.current_job_id) stateCell.append(button(`running ${w.current_job_id}`, () => selectJob(w.current_job_id)));
  else stateCell.textContent = w.busy ? "busy" : "idle";
  const tr = row([`${w.name}@${w.host} (pid ${w.pid})`, device, `${bytes(w.host_memory_bytes)}, ${w.cpus} CPUs`, stateCell,
                  w.version, when(w.heartbeat_at)]);
  tr.dataset.id = w.id;
  return tr;
}

async function loadWorkers() {
  if (!state.key) return;
  try {
    const page = await api("/v1/workers");
    $("#workers tbody").replaceChildren(...page.data.map(workerRow));
    $("#no-workers").hidden = page.data.length > 0;
    $("#workers-admin").hidden = true;
  } catch (err) {
    if (!(err instanceof ApiError) || err.problem.status !== 403) return banner(`Could not list workers: ${err.message}`);
    $("#workers tbody").replaceChildren();
    $("#no-workers").hidden = true;
    $("#workers-admin").hidden = false;
  }
}

function deliveryRow(hook, d) {
  const status = el("td");
  status.append(el("span", d.status, `status ${d.status}`));
  // what the receiver said last: its HTTP status, else why nothing came back (timeout, refused)
  const answer = d.last_status ? `HTTP ${d.last_status}` : (d.last_error || "");
  const actions = el("td");
  if (d.status !== "delivered") actions.append(button("retry now", () => retryDelivery(hook, d)));
  const tr = row([d.event_type, status, el("td", d.attempts, "num"), answer, when(d.created_at),
                  d.next_attempt_at ? when(d.next_attempt_at) : "", actions]);
  tr.dataset.id = d.id;
  return tr;
}

async function showDeliveries(hook) {
  state.webhook = hook;
  try {
    const page = await api(`/v1/webhook_endpoints/${hook.id}/deliveries?limit=20`);
    $("#deliveries-title").textContent = `Deliveries to ${hook.url}`;
    $("#deliveries tbody").replaceChildren(...page.data.map((d) => deliveryRow(hook, d)));
    $("#deliveries-box").hidden = false;
  } catch (err) {
    banner(`Could not list deliveries: ${err.message}`);
  }
}

async function retryDelivery(hook, d) {
  try {
    await api(`/v1/webhook_endpoints/${hook.id}/deliveries/${d.id}/retry`, { method: "POST" });
    await showDeliveries(hook);
  } catch (err) {
    banner(`Could not retry ${d.id}: ${err.message}`);
  }
}

// -- one job ----------------------------------------------------------------------------------
function renderSummary(job) {
  $("#detail-title").textContent = job.id;
  const dl = $("#summary");
  dl.replaceChildren();
  const cal = job.spec.calibration || {};
  const items = [
    ["status", job.status], ["model", job.model], ["method", job.method], ["target", target(job.spec)],
    ["profile", profileText(job.spec.sparsity_profile)],
    ["calibration", `${cal.source}, ${cal.nsamples} × ${cal.seqlen} tokens, seed ${cal.seed}`],
    ["attempt", job.attempt], ["created", when(job.created_at)],
  ];
  if (job.spec.dense_target) items.push(["dense target", `α ${job.spec.dense_target}`]);
  if (job.spec.gates) items.push(["gates", gatesText(job.spec.gates)]);
  if (job.result) {
    if (!job.result.sweep) items.push(["zeros", `${num(job.result.sparsity_achieved * 100, 2)}%`]);
    items.push(["took", duration(job.result.seconds_total)]);
    items.push(["device", job.result.device]);
  }
  for (const [k, v] of items) dl.append(el("dt", k), el("dd", v));
  const p = job.progress || {};
  const done = FINISHED_WORK.has(job.status);
  $("#progress-bar").value = done ? 100 : p.percent || 0;
  const parts = [p.stage || job.status];
  if (p.point) parts.push(`point ${p.point}`);
  if (p.step && !TERMINAL.has(job.status)) parts.push(`${p.step.what} ${p.step.done} of ${p.step.total}`);
  else if (p.layers_total) parts.push(`layer ${p.layers_done} of ${p.layers_total}`);
  if (p.eta_seconds !== undefined && p.eta_seconds !== null && !TERMINAL.has(job.status)) parts.push(`about ${duration(p.eta_seconds, true)} left`);
  $("#progress-text").textContent = parts.join(" · ");
  const error = $("#error-box");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  renderVerdict(job);
  $("#cancel").hidden = TERMINAL.has(job.status) || job.status === "cancelling";
  $("#delete").hidden = !TERMINAL.has(job.status);
}

function gatesText(gates) {
  const names = { max_ppl_ratio: "ppl ratio ≤", max_ppl: "ppl ≤", min_zero_shot_retained: "zero-shot kept ≥",
                  max_regression: "regression ≤" };
  return Object.entries(gates).map(([k, v]) => `${names[k] || k} ${k === "max_regression" ? `${v * 100}%` : v}`).join(", ");
}

// the gates' verdict: one line per check, the broken ones first, each with how far past its limit
function renderVerdict(job) {
  const box = $("#verdict");
  const verdict = job.result && job.result.gates;
  box.hidden = !verdict;
  if (!verdict) return;
  box.className = verdict.passed ? "verdict passed" : "verdict failed";
  const checks = [...verdict.checks].sort((a, b) => Number(a.passed) - Number(b.passed));
  box.replaceChildren(el("strong", verdict.passed ? "Quality gates passed" : "Quality gates failed: do not ship"),
                      ...checks.map((c) => {
                        const li = el("li", c.message, c.passed ? "gate-pass" : "gate-fail");
                        li.dataset.gate = c.gate;
                        return li;
                      }));
}

function addLayer(data) {
  $("#layers tbody").append(row([el("td", data.layers_done, "num"), data.layer, el("td", num(data.target, 4), "num"),
                                 el("td", num(data.sparsity, 4), "num"),
                                 el("td", data.rel_error == null ? "–" : Number(data.rel_error).toExponential(3), "num"),
                                 el("td", num(data.layer_seconds, 2), "num")]));
}

async function renderReport(job) {
  const ppl = $("#perplexity tbody");
  ppl.replaceChildren();
  $("#results").hidden = !FINISHED_WORK.has(job.status);
  if (!FINISHED_WORK.has(job.status)) return;
  const report = await api(`/v1/jobs/${job.id}/report`);
  if (state.selected !== job.id) return;
  renderReportDetails(report);
  $("#sweep-box").hidden = !report.points;
  if (report.points) return drawSweep(report);
  drawJobCharts(report);
  for (const [name, r] of Object.entries(report.perplexity || {})) {
    ppl.append(row([name, el("td", num(r.dense, 2), "num"), el("td", num(r.pruned, 2), "num"),
                    el("td", r.dense ? num(r.pruned / r.dense, 3) : "", "num")]));
  }
  const zeroShot = $("#zeroshot tbody");
  zeroShot.replaceChildren();
  $("#zeroshot-box").hidden = Object.keys(report.zero_shot || {}).length === 0;  // no tasks ran: no empty table
  for (const [name, r] of Object.entries(report.zero_shot || {})) {
    const metric = "acc_norm" in r.pruned ? "acc_norm" : "acc";  // the harness's headline metric per task
    const dense = r.dense ? r.dense[metric] : null;
    zeroShot.append(row([name, metric, el("td", num(dense, 3), "num"), el("td", num(r.pruned[metric], 3), "num"),
                         el("td", dense === null ? "" : num(r.pruned[metric] - dense, 3), "num"), el("td", r.docs, "num")]));
  }
  const layers = $("#layers tbody");
  layers.replaceChildren();
  report.layers.forEach((layer, i) => addLayer({ layers_done: i + 1, layer: layer.name, target: layer.target,
                                                 sparsity: layer.sparsity, rel_error: layer.rel_error,
                                                 layer_seconds: layer.seconds }));
}

// A plain link, so the browser streams the file to disk (a 30 GB checkpoint never sits in page
// memory); the key cannot ride on a link, so the API signs one for this path, valid a few minutes.
async function download(linkPath, filename) {
  try {
    const link = await api(linkPath, { method: "POST" });
    const a = el("a");
    a.href = link.url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    banner(`Download failed: ${err.message}`);
  }
}

async function renderArtifacts(job) {
  const body = $("#artifacts tbody");
  body.replaceChildren();
  const page = await api(`/v1/jobs/${job.id}/artifacts`);
  $("#artifacts-box").hidden = page.data.length === 0;
  $("#download-all").onclick = () => download(`/v1/jobs/${job.id}/artifacts/archive/link`, `${job.id}.tar`);
  for (const artifact of page.data) {
    const cell = el("td");
    cell.append(button("download", () => download(`/v1/artifacts/${artifact.id}/link`, artifact.name.split("/").pop())));
    const sha = el("td");
    sha.append(el("code", artifact.sha256.slice(0, 16) + "…"));
    sha.title = artifact.sha256;
    body.append(row([artifact.name, el("td", bytes(artifact.size), "num"), sha, cell]));
  }
}

// Server-sent events need the Authorization header, which EventSource cannot send: read the
// stream with fetch and split it into events ourselves.
async function follow(jobId, afterId, signal) {
  const response = await fetch(`/v1/jobs/${jobId}/events?after=${afterId}`, {
    headers: { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" }, signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = Object.fromEntries(block.split("\n").filter((l) => !l.startsWith(":"))
        .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
      if (!fields.data || state.selected !== jobId) continue;
      const event = JSON.parse(fields.data);
      if (event.type === "layer_done") {
        addLayer(event.data);
        const job = await api(`/v1/jobs/${jobId}`);
        renderSummary(job);
      } else if (event.type === "status") {
        await showJob(jobId, false);
      }
    }
  }
}

async function showJob(jobId, restartStream) {
  const job = await api(`/v1/jobs/${jobId}`);
  if (state.selected !== jobId) return;
  renderSummary(job);
  if (TERMINAL.has(job.status)) {
    await renderReport(job);
    await renderArtifacts(job);
    loadJobs();
    return;
  }
  if (restartStream) {
    const events = await api(`/v1/jobs/${jobId}/events?limit=1000`);
    const layers = $("#layers tbody");
    layers.replaceChildren();
    let last = 0;
    for (const e of events.data) {
      if (e.type === "layer_done") addLayer(e.data);
      last = e.id;
    }
    if (state.stream) state.stream.abort();
    state.stream = new AbortController();
    follow(jobId, last, state.stream.signal).catch(() => {});
  }
}

async function selectJob(jobId) {
  state.selected = jobId;
  $("#compare").hidden = true;
  for (const tr of document.querySelectorAll("#jobs tbody tr")) tr.classList.toggle("selected", tr.dataset.id === jobId);
  $("#new-job").hidden = true;
  // Name the job before the panel shows: the fetch below is async, and a visible panel that still
  // carries the previous job's title (or none) misleads the reader for a moment.
  $("#detail-title").textContent = jobId;
  $("#summary").replaceChildren();
  $("#detail").hidden = false;
  for (const id of ["#perplexity tbody", "#zeroshot tbody", "#layers tbody", "#artifacts tbody"]) $(id).replaceChildren();
  $("#results").hidden = true;
  $("#artifacts-box").hidden = true;
  $("#job-charts").replaceChildren();
  $("#verdict").hidden = true;
  $("#sweep-box").hidden = true;
  try {
    await showJob(jobId, true);
  } catch (err) {
    banner(`Could not load ${jobId}: ${err.message}`);
  }
}

// -- actions ----------------------------------------------------------------------------------
async function act(method, suffix) {
  const id = state.selected;
  if (method === "DELETE" && !window.confirm(`Delete ${id} with its checkpoint, masks and report? This cannot be undone.`)) return;
  try {
    await api(`/v1/jobs/${id}${suffix}`, { method });
    if (method === "DELETE") {
      state.selected = null;
      $("#detail").hidden = true;
    } else {
      await showJob(id, false);
    }
    loadJobs();
  } catch (err) {
    banner(err.message);
  }
}

// the submit form's methods and their option inputs come from GET /v1/methods (the registry)
function optionInput(o) {
  let input;
  if (o.type === "boolean") {
    input = el("select", "");
    input.replaceChildren(...["", "true", "false"].map((v) => { const opt = el("option", v || `(${o.default})`); opt.value = v; return opt; }));
  } else if (o.enum) {
    input = el("select", "");
    input.replaceChildren(...["", ...o.enum].map((v) => { const opt = el("option", v || `(${o.default})`); opt.value = v; return opt; }));
  } else {
    input = document.createElement("input");
    input.type = "number";
    input.step = o.type === "integer" ? "1" : "any";
    input.placeholder = String(o.default);
    for (const [attr, key] of [["min", "minimum"], ["max", "maximum"]]) if (key in o) input[attr] = o[key];
  }
  input.name = `option:${o.name}`;
  input.dataset.type = o.type;
  const label = el("label", `${o.name} `);
  label.title = o.description;
  label.append(input);
  return label;
}

function showOptions() {
  const method = state.methods.find((m) => m.name === $("#job-form select[name=method]").value);
  const box = $("#method-options");
  box.replaceChildren(el("legend", method.options.length ? "options (empty: default)" : "no options"),
                      ...method.options.map(optionInput));
  $("#quant-fields").hidden = !method.joint_quantization;  // the registry says which methods quantize
}

function chosenOptions(form) {
  const options = {};
  for (const input of form.querySelectorAll("[name^='option:']")) {
    if (input.value === "") continue;
    const name = input.name.slice(7);
    const type = input.dataset.type;
    options[name] = type === "boolean" ? input.value === "true" : (type === "integer" || type === "number") ? Number(input.value) : input.value;
  }
  return options;
}

async function openForm() {
  $("#detail").hidden = true;
  $("#compare").hidden = true;
  $("#new-job").hidden = false;
  const methodSelect = $("#job-form select[name=method]");
  if (!state.methods) {
    state.methods = (await api("/v1/methods")).data;
    methodSelect.replaceChildren(...state.methods.map((m) => {
      const option = el("option", m.name);
      option.title = m.summary;
      return option;
    }));
    methodSelect.value = state.methods.some((m) => m.name === "alps") ? "alps" : state.methods[0].name;
    methodSelect.addEventListener("change", showOptions);
    showOptions();
  }
  const select = $("#job-form select[name=model]");
  const models = await api("/v1/models");
  select.replaceChildren(...models.data.map((m) => {
    const option = el("option", m.kind === "bundled" ? m.name : `${m.name} (${m.kind})`);
    option.value = m.name;
    return option;
  }));
}

function chosenProfile(f) {
  // null for the default (uniform, no rules); the API checks every value and names the bad one
  const rules = f.rules.value.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const at = line.lastIndexOf("=");
    return { match: at < 0 ? line : line.slice(0, at), sparsity: at < 0 ? null : Number(line.slice(at + 1)) };
  });
  const kind = f.profile.value;
  if (kind === "uniform" && !rules.length) return null;
  const profile = { kind, rules };
  if (kind === "owl") Object.assign(profile, { owl_m: Number(f.owl_m.value), owl_lambda: Number(f.owl_lambda.value) });
  return profile;
}

function showProfileFields() {
  const owl = $("#job-form select[name=profile]").value === "owl";
  document.querySelectorAll("#profile-fields .owl-only").forEach((label) => { label.hidden = !owl; });
}

// "calibration.nsamples: must be ..."; a whole-body rule has no field of its own: say so
function fieldError(e) {
  return `${e.field || "job"}: ${String(e.message).replace(/^Value error, /, "")}`;
}

async function submitJob(event) {
  event.preventDefault();
  const f = event.target.elements;
  const body = {
    model: f.model.value, method: f.method.value, dtype: f.dtype.value, device: f.device.value.trim() || "auto",
    calibration: { source: f.source.value, nsamples: Number(f.nsamples.value), seqlen: Number(f.seqlen.value),
                   seed: Number(f.seed.value || 0) },
    evaluation: { datasets: [...f.eval.selectedOptions].map((o) => o.value) },
  };
  const options = chosenOptions(event.target);
  if (Object.keys(options).length) body.options = options;
  const sweep = f.sweep.value.split(",").map((v) => v.trim()).filter(Boolean);
  if (sweep.length) body.sweep = sweep.map((v) => (v.includes(":") ? v : Number(v)));
  else if (f.pattern.value.trim()) body.pattern = f.pattern.value.trim();
  else body.sparsity = Number(f.sparsity.value);
  if (!$("#quant-fields").hidden && f.bits.value) {
    body.quantize = { bits: Number(f.bits.value), format: f.quant_format.value };
    if (f.group_size.value) body.quantize.group_size = Number(f.group_size.value);
  }
  const gates = {};
  for (const name of ["max_ppl_ratio", "max_ppl", "min_zero_shot_retained", "max_regression"]) {
    if (f[name].value !== "") gates[name] = Number(f[name].value);
  }
  if (Object.keys(gates).length) body.gates = gates;
  const profile = chosenProfile(f);
  if (profile) body.sparsity_profile = profile;
  if (f.dense_target.value !== "") body.dense_target = Number(f.dense_target.value);
  if (f.limit.value) body.evaluation.limit = Number(f.limit.value);
  const tasks = [...f.tasks.selectedOptions].map((o) => o.value);
  if (tasks.length) body.evaluation.tasks = tasks;
  if (f.task_limit.value) body.evaluation.task_limit = Number(f.task_limit.value);
  const errors = $("#form-errors");
  try {
    const job = await api("/v1/jobs", {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
    });
    errors.hidden = true;
    await loadJobs();
    selectJob(job.id);
  } catch (err) {
    const details = (err.problem && err.problem.errors) || [];
    errors.textContent = details.length ? details.map(fieldError).join("\n") : err.message;
    errors.hidden = false;
  }
}

function useKey(event) {
  event.preventDefault();
  state.key = $("#key").value.trim();
  $("#key-hint").hidden = Boolean(state.key);
  localStorage.setItem("topiary.key", state.key);
  $("#whoami").textContent = state.key ? `key ${state.key.split("_").slice(0, 2).join("_")}…` : "";
  state.after = null;
  loadJobs();
  loadSchedules();
  loadWebhooks();
  loadWorkers();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#key").value = state.key;
  $("#key-hint").hidden = Boolean(state.key);
  $("#key-form").addEventListener("submit", useKey);
  $("#status-filter").addEventListener("change", () => loadJobs());
  $("#more").addEventListener("click", () => loadJobs(true));
  $("#cancel").addEventListener("click", () => act("POST", "/cancel"));
  $("#delete").addEventListener("click", () => act("DELETE", ""));
  $("#compare-button").addEventListener("click", () => compareJobs([...state.compare]));
  $("#new-job-button").addEventListener("click", () => openForm().catch((err) => banner(err.message)));
  $("#close-form").addEventListener("click", () => { $("#new-job").hidden = true; });
  $("#job-form").addEventListener("submit", submitJob);
  $("#job-form select[name=profile]").addEventListener("change", showProfileFields);
  $("#schedule-filter button").addEventListener("click", () => filterBySchedule(null));
  if (state.key) {
    $("#whoami").textContent = `key ${state.key.split("_").slice(0, 2).join("_")}…`;
    loadJobs();
    loadSchedules();
    loadWebhooks();
    loadWorkers();
  }
  setInterval(() => { if (state.key && !document.hidden) loadJobs(); }, 3000);
  setInterval(() => { if (state.key && !document.hidden) loadSchedules(); }, 30000);
  setInterval(() => { if (state.key && !document.hidden) loadWebhooks(); }, 5000);  // deliveries retry on their own
  setInterval(() => { if (state.key && !document.hidden) loadWorkers(); }, 5000);
});
