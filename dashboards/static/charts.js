// Small SVG charts drawn by our own code: horizontal bars (funnel, reasons, categories) and
// histograms. Labels are set with textContent, so untrusted names stay text.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // rows: [{label, value, note}] -> one bar per row, value labels at the bar ends.
  function hbars(rows, { width = 520, labelWidth = 190, barHeight = 18, format = (v) => v, cls = "bar" } = {}) {
    const height = rows.length * (barHeight + 4) + 4;
    const root = svg("svg", { class: "chart hbars", viewBox: `0 0 ${width} ${height}`, role: "img" });
    const max = Math.max(1e-9, ...rows.map((r) => r.value));
    const span = width - labelWidth - 110;
    rows.forEach((row, i) => {
      const y = 4 + i * (barHeight + 4);
      const label = svg("text", { x: labelWidth - 6, y: y + barHeight - 5, "text-anchor": "end" }, row.label);
      label.append(svg("title", {}, row.label));
      root.append(label);
      root.append(svg("rect", { class: cls, x: labelWidth, y, width: Math.max(1, (row.value / max) * span), height: barHeight, "data-value": row.value }));
      root.append(svg("text", { x: labelWidth + (row.value / max) * span + 4, y: y + barHeight - 5 }, format(row.value) + (row.note ? ` · ${row.note}` : "")));
    });
    return root;
  }

  // {edges, counts} -> vertical bars over bins, edges on the x axis.
  function histogram({ edges, counts }, { width = 520, height = 150, unit = "" } = {}) {
    const root = svg("svg", { class: "chart histogram", viewBox: `0 0 ${width} ${height}`, role: "img" });
    if (!counts || !counts.length) { root.append(svg("text", { x: 10, y: 20 }, "no data")); return root; }
    const left = 30, bottom = 20, top = 12, plotW = width - left - 8, plotH = height - bottom - top;
    const max = Math.max(1, ...counts), barW = plotW / counts.length;
    root.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH }));
    root.append(svg("text", { x: 2, y: top + 8 }, max));
    counts.forEach((count, i) => {
      const h = (count / max) * plotH;
      const bar = svg("rect", { class: "bar", x: left + i * barW + 1, y: top + plotH - h, width: Math.max(1, barW - 2), height: h, "data-value": count });
      bar.append(svg("title", {}, `${edges[i]}–${edges[i + 1]} ${unit}: ${count}`));
      root.append(bar);
    });
    const step = Math.ceil(edges.length / 8);
    edges.forEach((edge, i) => {
      if (i % step === 0 || i === edges.length - 1) root.append(svg("text", { x: left + i * barW, y: height - 5, "text-anchor": "middle" }, Number(edge).toFixed(edge % 1 ? 1 : 0)));
    });
    return root;
  }

  return { hbars, histogram };
})();
