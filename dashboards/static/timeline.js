// Timelines under the player: rotation velocity over speed-bucket bands, yaw/pitch/roll,
// speech activity. x is each frame's own time (frame_time_s), so a gap in the video is a gap here.
"use strict";

const Timeline = (() => {
  const LANES = [
    { key: "velocity", title: "rotation velocity (deg/s), speed-bucket bands", height: 0.42 },
    { key: "pose", title: "yaw / pitch / roll (deg)", height: 0.40 },
    { key: "speech", title: "speech", height: 0.18 },
  ];
  const POSE_COLOURS = ["#ff6b6b", "#ffd60a", "#4da3ff"];

  function layout(canvas) {
    const width = canvas.width, height = canvas.height, left = 34, right = 6;
    let top = 0;
    return LANES.map((lane) => {
      const h = Math.round(lane.height * height);
      const box = { ...lane, x: left, y: top + 12, w: width - left - right, h: h - 16 };
      top += h;
      return box;
    });
  }

  function xOf(labels, box, frame) {
    const times = labels.frame_time_s, t0 = times[0], t1 = times[times.length - 1];
    return box.x + (t1 > t0 ? (times[frame] - t0) / (t1 - t0) : 0) * box.w;
  }

  function frameAtX(labels, canvas, clientX) {
    const rect = canvas.getBoundingClientRect();
    const box = layout(canvas)[0];
    const x = (clientX - rect.left) * (canvas.width / rect.width);
    const times = labels.frame_time_s, t0 = times[0], t1 = times[times.length - 1];
    const t = t0 + Math.min(1, Math.max(0, (x - box.x) / box.w)) * (t1 - t0);
    let best = 0;
    for (let i = 0; i < times.length; i++) if (Math.abs(times[i] - t) < Math.abs(times[best] - t)) best = i;
    return best;
  }

  function series(ctx, labels, box, values, low, high, colour) {
    ctx.strokeStyle = colour; ctx.lineWidth = 1.2; ctx.beginPath();
    let pen = false;
    values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const y = box.y + box.h - ((Math.min(high, Math.max(low, v)) - low) / (high - low || 1)) * box.h;
      const x = xOf(labels, box, i);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }

  function draw(canvas, labels, frame) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!labels) return;
    ctx.font = "10px system-ui, sans-serif";
    for (const box of layout(canvas)) {
      ctx.fillStyle = "#98a2b3"; ctx.fillText(box.title, box.x, box.y - 3);
      ctx.strokeStyle = "#2c333d"; ctx.strokeRect(box.x, box.y, box.w, box.h);
      if (box.key === "velocity") {
        const finite = labels.velocity_deg_per_s.filter((v) => v !== null);
        const edges = labels.bucket_edges_deg_per_s || [];
        const high = Math.max(10, ...finite, ...(edges.length > 1 ? [edges[Math.min(edges.length - 1, 6)]] : []));
        for (let b = 0; b + 1 < edges.length; b++) {  // one band per speed bucket
          const lo = Math.min(edges[b], high), hi = Math.min(edges[b + 1], high);
          if (hi <= lo) continue;
          const y0 = box.y + box.h - (hi / high) * box.h, y1 = box.y + box.h - (lo / high) * box.h;
          ctx.fillStyle = b % 2 ? "rgba(77,163,255,0.10)" : "rgba(77,163,255,0.20)";
          ctx.fillRect(box.x, y0, box.w, y1 - y0);
          ctx.fillStyle = "#5c6b80"; ctx.fillText(`b${b}`, box.x - 16, Math.max(box.y + 8, (y0 + y1) / 2 + 3));
        }
        ctx.fillStyle = "#98a2b3"; ctx.fillText(Math.round(high), 2, box.y + 8); ctx.fillText("0", 2, box.y + box.h);
        series(ctx, labels, box, labels.velocity_deg_per_s, 0, high, "#e6e9ee");
      } else if (box.key === "pose") {
        const axes = [0, 1, 2].map((k) => labels.yaw_pitch_roll_deg.map((row) => (row ? row[k] : null)));
        const finite = axes.flat().filter((v) => v !== null).map(Math.abs);
        const bound = Math.max(10, ...finite);
        ctx.strokeStyle = "#2c333d"; ctx.beginPath(); ctx.moveTo(box.x, box.y + box.h / 2); ctx.lineTo(box.x + box.w, box.y + box.h / 2); ctx.stroke();
        axes.forEach((values, k) => series(ctx, labels, box, values, -bound, bound, POSE_COLOURS[k]));
        ctx.fillStyle = "#98a2b3"; ctx.fillText(`±${Math.round(bound)}`, 2, box.y + 8);
        ["yaw", "pitch", "roll"].forEach((name, k) => { ctx.fillStyle = POSE_COLOURS[k]; ctx.fillText(name, box.x + box.w - 90 + k * 30, box.y - 3); });
      } else {
        ctx.fillStyle = "#2fbf71";
        labels.speech.forEach((on, i) => {
          if (!on) return;
          const x0 = xOf(labels, box, i);
          const x1 = i + 1 < labels.n_frames ? xOf(labels, box, i + 1) : box.x + box.w;
          ctx.fillRect(x0, box.y + 2, Math.max(1, x1 - x0), box.h - 4);
        });
      }
    }
    if (frame !== null && frame !== undefined) {  // the cursor: the frame on screen
      const x = xOf(labels, layout(canvas)[0], frame);
      ctx.strokeStyle = "#ff9f0a"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.stroke();
    }
  }

  return { draw, frameAtX };
})();
