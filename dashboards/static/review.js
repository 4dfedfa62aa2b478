// The review page: annotators, pairwise agreement, disagreements, activity, export.
"use strict";

(async () => {
  const { el, api, fmt } = Emo;
  await Emo.init("review");
  const data = await api("/api/review");
  const table = (head, rows) => el("table", {}, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
  const link = (clipId) => el("a", { href: `/audit#clip=${encodeURIComponent(clipId)}` }, clipId);
  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");

  document.getElementById("annotators").append(table(["annotator", "decisions", "clips", "accept", "reject", "flag", "first", "last"],
    data.annotators.map((a) => el("tr", {}, el("td", {}, a.annotator), el("td", { class: "num" }, a.decisions), el("td", { class: "num" }, a.clips),
      el("td", { class: "num" }, a.accepts), el("td", { class: "num" }, a.rejects), el("td", { class: "num" }, a.flags),
      el("td", {}, when(a.first_at)), el("td", {}, when(a.last_at))))));

  const ag = data.agreement;
  const agreement = document.getElementById("agreement");
  agreement.append(el("p", {}, `${ag.clips_reviewed} clips reviewed, ${ag.clips_double_reviewed} by two or more annotators, ${ag.disagreement_count} disagreements.`));
  agreement.append(table(["annotators", "clips in common", "agreement", "Cohen's kappa"],
    ag.pairs.map((p) => el("tr", {}, el("td", {}, p.annotators.join(" · ")), el("td", { class: "num" }, p.clips),
      el("td", { class: "num" }, `${fmt(p.agreement * 100, 0)} %`), el("td", { class: "num" }, p.kappa === null ? "–" : fmt(p.kappa, 2))))));

  document.getElementById("disagreements").append(table(["clip", "votes"],
    ag.disagreements.map((d) => el("tr", {}, el("td", {}, link(d.clip_id)),
      el("td", {}, Object.entries(d.votes).map(([who, v]) => el("span", { class: `badge ${v}` }, `${who}: ${v}`)))))));

  const exportBox = document.getElementById("export");
  const status = el("span", { class: "status-line" }, data.export ? `last written ${when(data.export.at)}: ${data.export.rows} rows` : "decisions.parquet is rewritten a second after each decision");
  exportBox.append(el("p", {}, "Shard builds read DIR/decisions.parquet: emoforge shards build DIR --out SHARDS --set exclude=DIR/decisions.parquet"),
    el("button", { type: "button", onclick: async () => {
      try { const r = await api("/api/export", { method: "POST", body: {} }); status.textContent = `wrote ${r.rows} rows to ${r.path}`; }
      catch (error) { status.textContent = error.message; }
    } }, "write decisions.parquet now"), " ", status);

  document.getElementById("activity").append(table(["when", "annotator", "clip", "decision", "reason", "note"],
    data.activity.map((a) => el("tr", {}, el("td", {}, when(a.decided_at)), el("td", {}, a.annotator), el("td", {}, link(a.clip_id)),
      el("td", {}, el("span", { class: `badge ${a.decision}` }, a.decision)), el("td", {}, a.reason || ""), el("td", {}, a.note || "")))));
  document.body.dataset.ready = "1";
})();
