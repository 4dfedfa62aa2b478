"""The main job on its embedded default: ``emoforge demo --out DIR``.

1. render ground-truth footage (``emoforge footage``);
2. serve it over HTTP on 127.0.0.1, like a video site;
3. curate it from a URL list through yt-dlp on a local Ray cluster (``emoforge curate``);
4. score the kept clips against the footage's truth;
5. write the kept clips as WebDataset shards and verify them (``emoforge shards``).
"""

from __future__ import annotations

import json
import sys
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


DEMO_PORT = 8765


def run_demo(out: Path, videos: int = 4, minutes: float = 0.5, seed: int = 0) -> dict:
    from emoforge.curation.cli import format_summary
    from emoforge.curation.config import CurationConfig
    from emoforge.curation.evaluate import evaluate
    from emoforge.curation.footage.generate import generate_footage
    from emoforge.curation.pipeline import curate

    out = Path(out)
    footage_dir = out / "footage"
    print(f"demo 1/5: rendering {videos} videos of {minutes} min into {footage_dir}", file=sys.stderr)
    truth_paths = generate_footage(footage_dir, videos=videos, seed=seed, minutes=minutes)
    with serve_folder(footage_dir, port=DEMO_PORT) as base_url:
        url_list = out / "sources.txt"
        lines = ["# generated footage, served like a video site"]
        lines += [f"{base_url}/{json.loads(p.read_text())['video']['file']}" for p in truth_paths]
        lines += ["# a link that went dead: recorded as a reject, the run goes on", f"{base_url}/removed-video.mp4"]
        url_list.write_text("\n".join(lines) + "\n")
        print(f"demo 2/5: serving them at {base_url}; URL list {url_list}", file=sys.stderr)
        print("demo 3/5: curating on a local Ray cluster", file=sys.stderr)
        summary = curate([str(url_list)], out / "curated", CurationConfig())
    print(format_summary(summary, out / "curated"), file=sys.stderr)
    scores = evaluate(out / "curated", footage_dir)
    (out / "curated" / "evaluation.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(
        "demo 4/5: against the footage truth: "
        f"coverage of talking-head time {_pct(scores['coverage'])} (goal 95%), "
        f"kept time in single-face speaking heads {_pct(scores['speaking_head_share'])} (goal 95%; "
        f"in scenes to keep, pose range included: {_pct(scores['purity'])}), "
        f"clip edges within 2 frames of true cuts {_pct(scores['boundaries_within_2_frames'])}, "
        f"cut recall {_pct(scores['cut_recall'])}, precision {_pct(scores['cut_precision'])}",
        file=sys.stderr,
    )
    shards = None
    if summary["clips"]:
        from emoforge.shards.verify import verify_shards
        from emoforge.shards.writer import build_shards

        build_shards(out / "curated", out / "shards")
        report = verify_shards(out / "shards")
        shards = report.to_dict()
        print(f"demo 5/5: shards in {out / 'shards'}; verify: {'ok' if report.ok else 'FAILED'}", file=sys.stderr)
    print(f"demo: clips in {out / 'curated' / 'clips'}, manifest {out / 'curated' / 'manifest.parquet'}", file=sys.stderr)
    return {"summary": summary, "evaluation": scores, "shards": shards}


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up mid-file (yt-dlp probing, a cancelled download) is normal.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@contextmanager
def serve_folder(folder: Path, port: int = 0):
    """A real HTTP server for ``folder`` on 127.0.0.1 in a thread: on ``port``, else a free one."""
    handler = partial(_QuietHandler, directory=str(folder))
    try:  # a fixed port keeps the URLs, and so the source ids, the same across reruns (resume)
        server = _Server(("127.0.0.1", port), handler)
    except OSError:
        server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
