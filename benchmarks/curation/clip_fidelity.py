"""Clip fidelity: a curation run's clips of one source against that source's own frames,
cropped the same way (the clip's crop box, ``clips.crop_yuv420``) without encoding.

    .venv/bin/python benchmarks/curation/clip_fidelity.py RUN_DIR SOURCE_FILE

Prints the luma PSNR over every frame of the source's kept clips. Each clip frame ``k`` is
compared with the latest source frame at or before ``source_span_s[0] + k / 25`` (the
span's timeline), turned as the source's rotation metadata says (plane by plane, as the
clips are cropped). Sources larger than the labels' 1080 px cap are not supported (the crop
box is in the labels' pixels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    import av

    from emoforge.curation.clips import crop_yuv420
    from emoforge.files import file_sha256
    from emoforge.media import plane_pixels, turned, yuv420_planes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("source", type=Path)
    args = parser.parse_args()

    with av.open(str(args.source)) as container:
        frames = [f for f in container.decode(video=0) if f.pts is not None]
    times = np.array([float((f.pts - frames[0].pts) * f.time_base) for f in frames])
    digest = file_sha256(args.source)
    squared, count, clips = 0.0, 0, 0
    for meta_path in sorted((args.run_dir / "clips").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        record = json.loads((args.run_dir / "state" / f"{meta['source_id']}.json").read_text())
        if record.get("sha256") != digest:
            continue
        x0, y0, x1, _ = meta["crop_xyxy_px"]
        size = meta["size_px"]
        scale = size / (x1 - x0)
        affine = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
        start_s = meta["source_span_s"][0]
        turns = (record["probe"].get("display_rotation_deg") or 0) // 90
        clips += 1
        with av.open(str(meta_path.with_suffix(".mp4"))) as container:
            for k, frame in enumerate(container.decode(video=0)):
                i = max(0, int(np.searchsorted(times, start_s + k / meta["fps"] + 1e-6)) - 1)
                reference = crop_yuv420(tuple(turned(plane, turns) for plane in yuv420_planes(frames[i])), affine, size)
                error = plane_pixels(frame, 0).astype(np.float64) - plane_pixels(reference, 0)
                squared += float((error ** 2).mean())
                count += 1
    if not count:
        raise SystemExit(f"error: no kept clip of {args.source.name} in {args.run_dir}")
    psnr = 10 * np.log10(255.0 ** 2 / (squared / count))
    print(json.dumps({"source": args.source.name, "clips": clips, "frames": count, "luma_psnr_db": round(psnr, 2)}))


if __name__ == "__main__":
    main()
