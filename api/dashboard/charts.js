// Small SVG charts drawn in the page: no library and no CDN (the CSP allows scripts from this
// origin only). Every plotted mark carries its raw value in data-* attributes and a <title>, so
// a reader can hover it and a test can check it against the report it came from.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 220, PAD = { left: 56, right: 12, top: 38, bottom: 34 };
  const COLORS = ["#2f6f4e", "#c26d1a", "#3b5ea8", "#8a3ca0", "#7a7a2a"];

  function node(tag, attrs = {}, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  function fmt(v) {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e5) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-2 || a >= 1e5)) return v.toExponential(1);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toPrecision(3).replace(/\.?0+$/, "");
  }

  // a scale from data to pixels; log scales need positive values (the caller filters the rest)
  function scale(lo, hi, from, to, log) {
    const f = log ? Math.log10 : (v) => v;
    let a = f(lo), b = f(hi);
    if (a === b) { a -= 1; b += 1; }
    return (v) => from + ((f(v) - a) / (b - a)) * (to - from);
  }

  function yTicks(lo, hi, log) {
    if (log) {  // the powers of ten inside the range; within one decade, its ends and middle
      const out = [];
      for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) out.push(10 ** e);
      return out.length > 1 ? out : [lo, Math.sqrt(lo * hi), hi];
    }
    return [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4);
  }

  function frame(chart, title, yLabel, lo, hi, log) {
    const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-chart": chart,
                              "aria-label": title });
    svg.append(node("text", { x: 8, y: 14, class: "chart-title" }, title));
    const y = scale(lo, hi, H - PAD.bottom, PAD.top, log);
    for (const t of yTicks(lo, hi, log)) {
      svg.append(node("line", { x1: PAD.left, x2: W - PAD.right, y1: y(t), y2: y(t), class: "grid-line" }));
      svg.append(node("text", { x: PAD.left - 4, y: y(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t)));
    }
    if (yLabel) svg.append(node("text", { x: 12, y: PAD.top - 8, class: "tick" }, yLabel));
    return { svg, y };
  }

  function legend(svg, names) {
    names.forEach((name, i) => {
      const x = W - PAD.right - (names.length - i) * 110;  // a row of its own, under the title
      svg.append(node("rect", { x, y: 19, width: 10, height: 10, fill: COLORS[i % COLORS.length] }));
      svg.append(node("text", { x: x + 14, y: 28, class: "tick" }, name));
    });
  }

  // bars start at zero; lines span their values (a 10% change must show), with a margin
  function range(values, log, zero) {
    const ok = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
    if (!ok.length) return [log ? 1 : 0, 1];
    const lo = Math.min(...ok), hi = Math.max(...ok);
    if (log) return [lo / 1.2, hi * 1.2];
    if (zero) return [Math.min(0, lo), hi === lo ? hi + 1 : hi * 1.05];
    const pad = hi === lo ? Math.abs(hi) * 0.1 || 1 : (hi - lo) * 0.1;
    return [lo - pad, hi + pad];
  }

  // series: [{name, points: [{x, y, label, mark}]}]; x are numbers, xLabels (optional) name them
  function line(chart, { title, yLabel, xLabel, series, log = false, xLabels = null, xNumeric = false }) {
    const ys = series.flatMap((s) => s.points.map((p) => p.y));
    const xs = series.flatMap((s) => s.points.map((p) => p.x));
    const [lo, hi] = range(ys, log, false);
    const { svg, y } = frame(chart, title, yLabel, lo, hi, log);
    const x = scale(Math.min(...xs), Math.max(...xs), PAD.left + 8, W - PAD.right - 8, false);
    const shownX = xNumeric ? [...new Set(xs)] : xs.filter((v, i, a) => a.indexOf(v) === i && (a.length <= 12 || i % Math.ceil(a.length / 12) === 0));
    for (const v of shownX) {
      svg.append(node("text", { x: x(v), y: H - PAD.bottom + 14, class: "tick", "text-anchor": "middle" },
                      xLabels ? xLabels(v) : fmt(v)));
    }
    if (xLabel) svg.append(node("text", { x: W - PAD.right, y: H - 4, class: "tick", "text-anchor": "end" }, xLabel));
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const drawn = s.points.filter((p) => Number.isFinite(p.y) && (!log || p.y > 0));
      if (drawn.length > 1) {
        svg.append(node("polyline", { points: drawn.map((p) => `${x(p.x)},${y(p.y)}`).join(" "), fill: "none",
                                      stroke: color, "stroke-width": 1.5 }));
      }
      for (const p of drawn) {
        const dot = node("circle", { cx: x(p.x), cy: y(p.y), r: p.mark ? 5 : 2.5, fill: p.mark ? "#a12c2c" : color,
                                     class: p.mark ? "point marked" : "point", "data-series": s.name, "data-x": p.x,
                                     "data-y": p.y, "data-label": p.label || "" });
        dot.append(node("title", {}, `${s.name} ${p.label || fmt(p.x)}: ${fmt(p.y)}${p.mark ? ` (${p.mark})` : ""}`));
        svg.append(dot);
      }
    });
    if (series.length > 1) legend(svg, series.map((s) => s.name));
    return svg;
  }

  // groups: names along x; series: [{name, values: [one per group, null for none]}]
  function bars(chart, { title, yLabel, groups, series, log = false }) {
    const [lo, hi] = range(series.flatMap((s) => s.values), log, true);
    const { svg, y } = frame(chart, title, yLabel, log ? lo : Math.min(0, lo), hi, log);
    const slot = (W - PAD.left - PAD.right) / Math.max(1, groups.length);
    const width = Math.min(40, (slot * 0.8) / series.length);
    const base = y(log ? lo : 0);
    groups.forEach((group, g) => {
      const left = PAD.left + g * slot + (slot - width * series.length) / 2;
      svg.append(node("text", { x: PAD.left + g * slot + slot / 2, y: H - PAD.bottom + 14, class: "tick",
                                "text-anchor": "middle" }, group));
      series.forEach((s, i) => {
        const v = s.values[g];
        if (v === null || v === undefined || !Number.isFinite(v)) return;
        const top = y(v);
        const bar = node("rect", { x: left + i * width, y: Math.min(top, base), width: width - 2,
                                   height: Math.max(1, Math.abs(base - top)), fill: COLORS[i % COLORS.length],
                                   class: "bar", "data-series": s.name, "data-group": group, "data-value": v });
        bar.append(node("title", {}, `${group} ${s.name}: ${fmt(v)}`));
        svg.append(bar);
      });
    });
    if (series.length > 1) legend(svg, series.map((s) => s.name));
    return svg;
  }

  return { line, bars, fmt };
})();
