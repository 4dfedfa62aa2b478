// The corpus page: funnel, reject reasons, distributions, per-source table, throughput.
"use strict";

(async () => {
  const { el, api, fmt } = Emo;
  await Emo.init("corpus");
  const data = await api("/api/corpus");
  const hours = (h) => (h >= 1 ? `${h.toFixed(2)} h` : `${(h * 60).toFixed(1)} min`);

  document.getElementById("funnel").append(Charts.hbars(
    data.funnel.map((s) => ({ label: s.stage, value: s.hours, note: `${s.items} ${s.unit}` })), { format: hours }));

  document.getElementById("reasons").append(data.reject_reasons.length
    ? Charts.hbars(data.reject_reasons.map((r) => ({ label: `${r.stage}: ${r.reason}`, value: r.count, note: hours(r.hours) })),
      { labelWidth: 250, cls: "bar bad" })
    : el("p", {}, "nothing rejected"));

  const t = data.throughput;
  const throughput = document.getElementById("throughput");
  if (t) {
    throughput.append(el("dl", { class: "meta" },
      el("dt", {}, "wall time"), el("dd", {}, `${fmt(t.wall_s, 0)} s`),
      el("dt", {}, "footage in / kept"), el("dd", {}, `${hours(t.hours_in || 0)} / ${hours(t.hours_kept || 0)}`),
      el("dt", {}, "speed"), el("dd", {}, `${fmt(t.footage_hours_per_wall_hour, 2)} h of footage per hour · ${fmt(t.clips_per_minute, 1)} clips/min`)));
    throughput.append(el("h2", {}, "CPU seconds by stage"));
    throughput.append(Charts.hbars(Object.entries(t.cpu_s_by_stage).map(([stage, s]) => ({ label: stage, value: s })), { format: (v) => `${v.toFixed(1)} s`, labelWidth: 120 }));
  } else throughput.append(el("p", {}, "no summary.json in the data folder"));

  document.getElementById("review-summary").append(el("dl", { class: "meta" },
    el("dt", {}, "clips indexed"), el("dd", {}, data.clips_indexed.toLocaleString()),
    el("dt", {}, "reviewed"), el("dd", {}, data.review.reviewed.toLocaleString()),
    el("dt", {}, "accepted"), el("dd", {}, data.review.accepted.toLocaleString()),
    el("dt", {}, "rejected by someone"), el("dd", {}, data.review.rejected.toLocaleString())));

  const distributions = document.getElementById("distributions");
  const grid = el("div", { style: null });
  grid.className = "dist-grid";
  const d = data.distributions;
  const categorical = [["speed_bucket", "speed bucket (mean velocity)", (l) => (l === "unknown" ? l : `bucket ${l}`)], ["language", "language", (l) => l], ["license", "licence", (l) => l]];
  for (const [key, title, label] of categorical) {
    grid.append(el("div", { class: "panel", dataset: { chart: key } }, el("h2", {}, title),
      Charts.hbars(d[key].labels.map((l, i) => ({ label: label(l), value: d[key].counts[i] })), { labelWidth: 140 })));
  }
  for (const key of ["p95_abs_yaw_deg", "p95_abs_pitch_deg", "p95_abs_roll_deg", "median_face_width_px", "duration_s", "mean_velocity_deg_per_s"]) {
    grid.append(el("div", { class: "panel", dataset: { chart: key } }, el("h2", {}, `${d[key].title} (${d[key].unit})`), Charts.histogram(d[key], { unit: d[key].unit })));
  }
  distributions.append(grid);

  const head = ["source", "title", "status", "reason", "duration", "scenes", "clips kept", "kept", "licence", "reviewed", "rejected in review"];
  const table = el("table", { id: "source-table" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, data.sources.map((s) => el("tr", {},
      el("td", {}, s.source_id), el("td", { title: s.location || "" }, s.title || ""), el("td", {}, el("span", { class: `badge ${s.status}` }, s.status || "")),
      el("td", {}, s.reason || ""), el("td", { class: "num" }, s.duration_s !== null ? `${fmt(s.duration_s, 1)} s` : "–"),
      el("td", { class: "num" }, fmt(s.scenes, 0)), el("td", { class: "num" }, fmt(s.clips_kept, 0)),
      el("td", { class: "num" }, s.kept_s !== null ? `${fmt(s.kept_s, 1)} s` : "–"), el("td", {}, s.license || "unknown"),
      el("td", { class: "num" }, s.reviewed), el("td", { class: "num" }, s.rejected)))));
  document.getElementById("sources").append(table);
  document.body.dataset.ready = "1";
})();
