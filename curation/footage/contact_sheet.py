"""A contact sheet of a generated video with its truth drawn on: the eye's check that
truth and pixels agree (boxes on the faces, the speaking face marked, scene kinds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def contact_sheet(video_path: Path, truth_path: Path, out_png: Path, columns: int = 4, rows: int = 3, tile_width: int = 320) -> Path:
    """Write a PNG grid of evenly spaced frames with truth boxes, pose and scene kind."""
    import av
    import cv2

    truth = json.loads(Path(truth_path).read_text())
    n_frames = truth["video"]["n_frames"]
    wanted = np.linspace(0, n_frames - 1, columns * rows).round().astype(int)
    tiles = {}
    with av.open(str(video_path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                rgb = np.rot90(frame.to_ndarray(format="rgb24"), k=(frame.rotation or 0) // 90)
                tiles[index] = np.ascontiguousarray(rgb)
            if index >= wanted[-1]:
                break
    scale = tile_width / truth["video"]["width"]
    tile_height = int(round(truth["video"]["height"] * scale))
    sheet = np.zeros((rows * tile_height, columns * tile_width, 3), np.uint8)
    for slot, index in enumerate(wanted):
        tile = cv2.resize(tiles[index], (tile_width, tile_height), interpolation=cv2.INTER_AREA)
        scene = next(s for s in truth["scenes"] if s["start_frame"] <= index < s["end_frame"]) if index < n_frames else truth["scenes"][-1]
        for track in truth["tracks"]:
            if index not in track["frames"]:
                continue
            row = track["frames"].index(index)
            x0, y0, x1, y1 = (np.asarray(track["box_xyxy_px"][row]) * scale).round().astype(int)
            colour = (255, 60, 60) if track["speaking"][row] else (60, 200, 255)
            cv2.rectangle(tile, (x0, y0), (x1, y1), colour, 2)
            label = f"y{track['yaw_deg'][row]:+.0f} p{track['pitch_deg'][row]:+.0f} r{track['roll_deg'][row]:+.0f}"
            cv2.putText(tile, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        caption = f"#{index} {scene['kind']}"
        cv2.putText(tile, caption, (6, tile_height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
        r, c = divmod(slot, columns)
        sheet[r * tile_height : (r + 1) * tile_height, c * tile_width : (c + 1) * tile_width] = tile
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    partial = out_png.with_name(out_png.stem + ".partial" + out_png.suffix)  # cv2 picks the format by suffix
    cv2.imwrite(str(partial), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    partial.replace(out_png)
    return out_png
