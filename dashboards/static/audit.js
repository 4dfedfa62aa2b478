// The audit page: clip list (queues, filters, sort, pages), a player that draws the labels on the
// presented frame, timelines, decisions with keyboard shortcuts, notes.
//
// Frame-exact overlay: requestVideoFrameCallback reports each presented frame's mediaTime; the
// label row is found by searching the clip's own frame_time_s (the pipeline's frame index),
// never by multiplying a time by an assumed frame rate.
"use strict";

(async () => {
  const { el, api, fmt, session } = Emo;
  const $ = (selector) => document.querySelector(selector);
  const info = await Emo.init("audit");
  const reasons = info.reject_reasons;
  const state = {
    params: { queue: "unreviewed", sort: "", order: "asc", page: 0, page_size: 50 },
    rows: [], total: 0, clip: null, detail: null, labels: null, mesh: null, meshClip: null,
    frame: null, mediaTime: null, overlay: true, rejectArmed: false, loadSeq: 0,
  };
  const video = $("#video"), overlay = $("#overlay"), timeline = $("#timeline");

  // ---- the clip list -------------------------------------------------------------------
  const COLUMNS = [
    ["clip_id", "clip", (r) => [el("span", {}, r.clip_id), r.title ? el("span", { class: "badge" }, r.title) : null]],
    ["status", "status", (r) => [el("span", { class: `badge ${r.status}` }, r.status), r.reason || ""]],
    ["speed_bucket", "bucket", (r) => (r.speed_bucket ?? "–"), true],
    ["yaw", "|yaw|", (r) => fmt(r.p95_abs_yaw_deg), true],
    ["pitch", "|pitch|", (r) => fmt(r.p95_abs_pitch_deg), true],
    ["roll", "|roll|", (r) => fmt(r.p95_abs_roll_deg), true],
    ["face", "face px", (r) => fmt(r.median_face_width_px, 0), true],
    ["duration", "s", (r) => fmt(r.duration_s, 1), true],
    ["suspicion", "susp.", (r) => (r.suspicion ? fmt(r.suspicion, 1) : ""), true],
    [null, "review", (r) => r.reviews.map((v) => el("span", { class: `badge ${v.decision}`, title: `${v.annotator} ${v.decided_at}` }, `${v.annotator}: ${v.decision}`))],
  ];

  function renderHead() {
    const row = el("tr");
    for (const [key, title] of COLUMNS) {
      const sorted = key && state.params.sort === key;
      row.append(el("th", {
        class: sorted ? `sorted ${state.params.order}` : null,
        onclick: key ? () => {
          if (state.params.sort === key) state.params.order = state.params.order === "asc" ? "desc" : "asc";
          else { state.params.sort = key; state.params.order = "asc"; }
          state.params.page = 0; renderHead(); loadList();
        } : null,
      }, title));
    }
    $("#clips thead").replaceChildren(row);
  }

  function query(extra = {}) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...state.params, ...extra })) if (value !== "" && value !== null) params.set(key, value);
    if (session.annotator) params.set("annotator", session.annotator);
    return params.toString();
  }

  async function loadList() {
    const seq = ++state.loadSeq, started = performance.now();
    try {
      const data = await api(`/api/clips?${query()}`);
      if (seq !== state.loadSeq) return;
      state.rows = data.clips; state.total = data.total;
      const ms = performance.now() - started;
      const first = data.page * data.page_size;
      $("#page-info").textContent = data.total ? `${first + 1}–${first + data.clips.length} of ${data.total.toLocaleString()} (${ms.toFixed(0)} ms)` : "no clips";
      $("#page-info").dataset.ms = ms.toFixed(1);
      renderRows();
    } catch (error) { $("#page-info").textContent = error.message; }
  }

  function renderRows() {
    const body = $("#clips tbody");
    body.replaceChildren(...state.rows.map((r) => {
      const tr = el("tr", { class: "clip" + (r.clip_id === state.clip ? " current" : ""), dataset: { clip: r.clip_id }, onclick: () => selectClip(r.clip_id) });
      for (const [, , cell, numeric] of COLUMNS) tr.append(el("td", { class: numeric ? "num" : null }, cell(r)));
      return tr;
    }));
  }

  async function loadFacets() {
    let facets;
    try { facets = await api(`/api/facets?${session.annotator ? "annotator=" + encodeURIComponent(session.annotator) : ""}`); }
    catch (error) { $("#page-info").textContent = error.message; return; }
    const fill = (name, values, label = (v) => v) => {
      const select = document.querySelector(`#filters [name=${name}]`);
      const current = select.value;
      select.replaceChildren(el("option", { value: "" }, "any"), ...values.map((v) => el("option", { value: String(v) }, label(v))));
      select.value = current;
    };
    fill("status", facets.status); fill("reason", facets.reason); fill("speed_bucket", facets.speed_bucket, (b) => `bucket ${b}`);
    fill("source", facets.source); fill("review_reason", facets.review_reasons);
    $("#queues").replaceChildren(...Object.entries(facets.queues).map(([name, count]) => el("button", {
      type: "button", class: name === state.params.queue ? "here" : null, dataset: { queue: name },
      onclick: () => { state.params.queue = name; state.params.page = 0; loadFacets(); loadList(); },
    }, `${name} (${count.toLocaleString()})`)));
  }

  $("#filters").addEventListener("change", (event) => {
    const form = new FormData($("#filters"));
    for (const [key, value] of form.entries()) state.params[key] = String(value).trim();
    state.params.page = 0; loadList(); event.preventDefault();
  });
  $("#filters").addEventListener("submit", (event) => event.preventDefault());
  $("#prev-page").onclick = () => { if (state.params.page > 0) { state.params.page--; loadList(); } };
  $("#next-page").onclick = () => { if ((state.params.page + 1) * state.params.page_size < state.total) { state.params.page++; loadList(); } };
  $("#page-size").onchange = (e) => { state.params.page_size = Number(e.target.value); state.params.page = 0; loadList(); };
  document.addEventListener("annotator", () => { loadFacets(); loadList(); });

  // ---- one clip --------------------------------------------------------------------------
  async function selectClip(clipId) {
    state.clip = clipId; state.labels = null; state.frame = null; state.mediaTime = null; state.pendingFrame = null;
    history.replaceState(null, "", `#clip=${encodeURIComponent(clipId)}`);
    for (const tr of document.querySelectorAll("tr.clip")) tr.classList.toggle("current", tr.dataset.clip === clipId);
    let detail, labels;
    try {
      [detail, labels] = await Promise.all([
        api(`/api/clips/${encodeURIComponent(clipId)}`),
        api(`/api/clips/${encodeURIComponent(clipId)}/labels`).catch(() => null),
      ]);
    } catch (error) { $("#clip-title").textContent = `${clipId}: ${error.message}`; return; }
    if (state.clip !== clipId) return;
    state.detail = detail; state.labels = labels;
    $("#clip-title").textContent = `${clipId}${detail.title ? " · " + detail.title : ""}`;
    renderDetail();
    const player = $("#player");
    player.querySelector(".nomedia")?.remove();
    overlay.dataset.frame = ""; overlay.dataset.clip = clipId;
    if (detail.has_media && labels) {
      video.hidden = false;
      video.dataset.clip = clipId;
      video.src = `/media/${encodeURIComponent(clipId)}.mp4`;
      video.load();
    } else {
      video.removeAttribute("src"); video.hidden = true; video.load();
      player.append(el("div", { class: "nomedia" }, "no clip video: curation keeps video only for kept clips"));
    }
    if (state.mesh && state.meshClip !== clipId) state.mesh = null;
    if ($("#show-mesh").checked) loadMesh();
    drawAll();
  }

  function renderDetail() {
    const d = state.detail;
    const rows = [
      ["title", d.title], ["source", d.source_id], ["status", d.status], ["pipeline reason", d.reason],
      ["frames", d.n_frames], ["duration", d.duration_s !== null ? `${fmt(d.duration_s, 2)} s` : null],
      ["speed bucket", d.speed_bucket], ["mean velocity", `${fmt(d.mean_velocity_deg_per_s)} deg/s`],
      ["peak velocity", `${fmt(d.max_velocity_deg_per_s)} deg/s`],
      ["|yaw| |pitch| |roll| p95", `${fmt(d.p95_abs_yaw_deg)} ${fmt(d.p95_abs_pitch_deg)} ${fmt(d.p95_abs_roll_deg)} deg`],
      ["face width", `${fmt(d.median_face_width_px, 0)} px`], ["speech", fmt(d.speech_fraction, 2)],
      ["licence", d.license], ["language", d.language], ["suspicious", d.suspicion_reasons],
      ["QA sample", d.in_qa_sample ? "yes" : "no"],
    ];
    const provenance = state.labels?.provenance || {};
    for (const key of ["uploader", "webpage_url", "upload_date"]) if (provenance[key]) rows.push([key, provenance[key]]);
    $("#meta").replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    $("#history").replaceChildren(...(d.history.length ? d.history.map((h) => el("li", { dataset: { decision: h.decision } },
      `${h.decided_at.replace("T", " ").slice(0, 19)} `, el("b", {}, h.annotator), ` ${h.decision}`,
      h.reason ? ` (${h.reason})` : "", h.note ? ` — ${h.note}` : "")) : [el("li", {}, "not reviewed yet")]));
    $("#notes").replaceChildren(...d.notes.map((n) => el("li", {},
      `${n.created_at.replace("T", " ").slice(0, 19)} `, el("b", {}, n.annotator), n.frame !== null ? ` @frame ${n.frame}: ` : ": ", n.text)));
  }

  // ---- frame-exact overlay -------------------------------------------------------------
  function frameAt(mediaTime) {
    // The last frame whose presentation time is at or before mediaTime (1 ms tolerance for rounding).
    const times = state.labels.frame_time_s;
    let lo = 0, hi = times.length - 1;
    if (mediaTime < times[0]) return 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= mediaTime + 1e-3) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  function onVideoFrame(now, metadata) {
    if (state.labels && video.dataset.clip === state.clip) {
      state.mediaTime = metadata.mediaTime;
      state.frame = frameAt(metadata.mediaTime);
      if (state.pendingFrame === state.frame || !video.seeking) state.pendingFrame = null;
      overlay.dataset.mediaTime = String(metadata.mediaTime);
      overlay.dataset.frame = String(state.frame);
      drawAll();
    }
    video.requestVideoFrameCallback(onVideoFrame);
  }
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) video.requestVideoFrameCallback(onVideoFrame);
  else $("#frame-info").textContent = "this browser lacks requestVideoFrameCallback: no overlay";

  function seekFrame(frame) {
    if (!state.labels || video.hidden) return;
    const times = state.labels.frame_time_s, n = times.length;
    frame = Math.max(0, Math.min(n - 1, frame));
    // Aim at the middle of the frame's display interval so rounding cannot land on a neighbour.
    const t = frame + 1 < n ? (times[frame] + times[frame + 1]) / 2 : times[frame] + (n > 1 ? (times[frame] - times[frame - 1]) / 2 : 0.02);
    video.pause();
    state.pendingFrame = frame;  // steps pressed before this seek lands count from here
    video.currentTime = t;
  }
  const currentFrame = () => state.pendingFrame ?? state.frame;

  function drawAll() {
    const labels = state.labels, frame = state.frame;
    const ctx = overlay.getContext("2d");
    const width = video.videoWidth || labels?.size_px || 512, height = video.videoHeight || labels?.size_px || 512;
    if (overlay.width !== width) overlay.width = width;
    if (overlay.height !== height) overlay.height = height;
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    Timeline.draw(timeline, labels, frame);
    if (!labels || frame === null) { $("#frame-info").textContent = "frame – / –"; return; }
    $("#frame-info").textContent = `frame ${frame} / ${labels.n_frames - 1} · t=${labels.frame_time_s[frame].toFixed(3)} s`;
    if (!state.overlay) return;
    const box = labels.box_xyxy_px[frame];
    if (box && $("#show-box").checked) {
      ctx.strokeStyle = "#00ff66"; ctx.lineWidth = 2;
      ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    }
    if ($("#show-mesh").checked && state.mesh && state.meshClip === state.clip) {
      const points = state.mesh[frame];
      if (points) {
        ctx.fillStyle = "rgba(255,255,255,0.7)";
        for (let i = 0; i < points.length; i += 2) ctx.fillRect(points[i] - 0.75, points[i + 1] - 0.75, 1.5, 1.5);
      }
    }
    const rotation = labels.rotation[frame];
    if (box && rotation && $("#show-axes").checked) {
      // Columns of R are the head's axes in camera coordinates; drawn orthographically from the box centre.
      const cx = (box[0] + box[2]) / 2, cy = (box[1] + box[3]) / 2, length = (box[2] - box[0]) * 0.45;
      const axes = [[rotation[0], rotation[3], "#ff3b30"], [rotation[1], rotation[4], "#ffd60a"], [-rotation[2], -rotation[5], "#0a84ff"]];
      ctx.lineWidth = 3;
      for (const [x, y, colour] of axes) {
        ctx.strokeStyle = colour; ctx.beginPath(); ctx.moveTo(cx, cy); ctx.lineTo(cx + x * length, cy + y * length); ctx.stroke();
      }
    }
  }

  async function loadMesh() {
    if (!state.clip || !state.labels?.has_mesh || state.meshClip === state.clip) return;
    const clipId = state.clip;
    let data;
    try { data = await api(`/api/clips/${encodeURIComponent(clipId)}/mesh`); } catch (error) { say(error.message, true); return; }
    if (state.clip === clipId) { state.mesh = data.mesh_px; state.meshClip = clipId; drawAll(); }
  }

  timeline.addEventListener("click", (event) => { if (state.labels) seekFrame(Timeline.frameAtX(state.labels, timeline, event.clientX)); });
  for (const id of ["#show-box", "#show-axes"]) $(id).addEventListener("change", drawAll);
  $("#show-mesh").addEventListener("change", () => { loadMesh(); drawAll(); });
  $("#play").onclick = () => togglePlay();
  $("#step-back").onclick = () => seekFrame((currentFrame() ?? 0) - 1);
  $("#step-fwd").onclick = () => seekFrame((currentFrame() ?? -1) + 1);
  video.addEventListener("play", () => { $("#play").textContent = "❚❚ pause"; });
  video.addEventListener("pause", () => { $("#play").textContent = "▶︎ play"; });
  function togglePlay() { if (video.hidden) return; if (video.paused) video.play(); else video.pause(); }

  // ---- decisions and notes -----------------------------------------------------------------
  $("#reject-reason").replaceChildren(el("option", { value: "" }, "reject reason…"),
    ...reasons.map((reason, i) => el("option", { value: reason }, `${(i + 1) % 10} ${reason}`)));

  function say(message, isError = false) { const line = $("#decide-status"); line.textContent = message; line.classList.toggle("error", isError); }

  async function decide(decision, reason = null) {
    if (!state.clip) return;
    if (!session.annotator) { say(session.tokensRequired ? "log in with your token first" : "enter your name (top right) first", true); return; }
    if (decision === "reject" && !reason) { say("pick a reason: 1–9, 0, or the menu", true); return; }
    const clipId = state.clip;
    const index = state.rows.findIndex((r) => r.clip_id === clipId);
    const following = index >= 0 && index + 1 < state.rows.length ? state.rows[index + 1].clip_id : null;
    const note = $("#note").value.trim();
    try {
      await api(`/api/clips/${encodeURIComponent(clipId)}/decisions`, { method: "POST",
        body: { decision, reason, note: note || null, request_id: crypto.randomUUID() } });
      $("#note").value = ""; $("#reject-reason").value = "";
      say(`${decision}${reason ? " (" + reason + ")" : ""} saved for ${clipId}`);
      document.body.dataset.lastDecision = `${clipId}:${decision}`;
    } catch (error) { say(error.message, true); return; }
    await Promise.all([loadList(), loadFacets()]);
    if (decision === "flag" || !following) { await selectClip(clipId); return; }
    await selectClip(following);
  }

  async function addNote() {
    const text = $("#note").value.trim();
    if (!state.clip || !text) return;
    if (!session.annotator) { say("enter your name first", true); return; }
    try {
      await api(`/api/clips/${encodeURIComponent(state.clip)}/notes`, { method: "POST", body: { text, frame: state.frame } });
      $("#note").value = "";
      state.detail = await api(`/api/clips/${encodeURIComponent(state.clip)}`); renderDetail(); say("note saved");
    } catch (error) { say(error.message, true); }
  }

  function moveClip(step) {
    const index = state.rows.findIndex((r) => r.clip_id === state.clip);
    const next = state.rows[index < 0 ? 0 : index + step];
    if (next) selectClip(next.clip_id);
    else if (step > 0 && (state.params.page + 1) * state.params.page_size < state.total) { state.params.page++; loadList().then(() => state.rows[0] && selectClip(state.rows[0].clip_id)); }
    else if (step < 0 && state.params.page > 0) { state.params.page--; loadList().then(() => state.rows.length && selectClip(state.rows[state.rows.length - 1].clip_id)); }
  }

  $("#accept").onclick = () => decide("accept");
  $("#reject").onclick = () => decide("reject", $("#reject-reason").value || null);
  $("#flag").onclick = () => decide("flag", $("#reject-reason").value || null);
  $("#add-note").onclick = addNote;
  $("#prev-clip").onclick = () => moveClip(-1);
  $("#next-clip").onclick = () => moveClip(1);

  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
    if (typing) { if (event.key === "Escape") event.target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (state.rejectArmed) {
      state.rejectArmed = false;
      if (/^[0-9]$/.test(event.key)) { decide("reject", reasons[(Number(event.key) + 9) % 10]); event.preventDefault(); return; }
      if (event.key === "Enter") { decide("reject", $("#reject-reason").value || null); event.preventDefault(); return; }
      say("reject cancelled");
      if (event.key === "Escape") return;
    }
    const actions = {
      " ": togglePlay, ",": () => seekFrame((currentFrame() ?? 0) - 1), ".": () => seekFrame((currentFrame() ?? -1) + 1),
      ArrowLeft: () => seekFrame((currentFrame() ?? 0) - 1), ArrowRight: () => seekFrame((currentFrame() ?? -1) + 1),
      a: () => decide("accept"), f: () => decide("flag", $("#reject-reason").value || null),
      r: () => { state.rejectArmed = true; say("reject: press 1–9 or 0 for the reason, Enter for the menu's, Esc to cancel"); },
      j: () => moveClip(1), ArrowDown: () => moveClip(1), k: () => moveClip(-1), ArrowUp: () => moveClip(-1),
      n: () => $("#note").focus(), o: () => { state.overlay = !state.overlay; drawAll(); },
      m: () => { $("#show-mesh").checked = !$("#show-mesh").checked; loadMesh(); drawAll(); },
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  // ---- start -----------------------------------------------------------------------------
  renderHead();
  await Promise.all([loadFacets(), loadList()]);
  const linked = new URLSearchParams(location.hash.slice(1)).get("clip");
  if (linked) await selectClip(linked);
  else if (state.rows.length) await selectClip(state.rows[0].clip_id);
  window.addEventListener("hashchange", () => {
    const clipId = new URLSearchParams(location.hash.slice(1)).get("clip");
    if (clipId && clipId !== state.clip) selectClip(clipId);
  });
  document.body.dataset.ready = "1";
})();
