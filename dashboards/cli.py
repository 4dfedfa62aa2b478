"""``emoforge dashboard``: the annotators' audit pages and the corpus view, served from a data folder."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="audit clips and labels in a browser; corpus funnel and distributions",
        description=(
            "Serve the audit, review and corpus pages for a curation output folder (manifest.parquet, "
            "clips/). Decisions are stored in a database (SQLite under DIR by default) and exported to "
            "DIR/decisions.parquet for shard builds (docs/dashboards.md)."
        ),
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="curation output folder")
    parser.add_argument("--db", metavar="URL", help="sqlite:///FILE or postgresql://... (default: sqlite under DIR)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1); any other needs tokens")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--require-tokens", action="store_true", help="require annotator tokens on loopback too")
    parser.add_argument("--add-annotator", metavar="NAME", help="create an annotator (or give them a new token), print the token, exit")
    parser.add_argument("--export", action="store_true", help="write DIR/decisions.parquet from the database and exit")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emoforge.errors import UserError, require

    require("starlette", "dashboards")
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        raise UserError(f"no data folder at {data_dir}")
    if args.add_annotator or args.export:
        from emoforge.dashboards.export import export_decisions
        from emoforge.dashboards.queries import add_annotator
        from emoforge.dashboards.server import open_database

        db = open_database(data_dir, args.db)
        try:
            if args.add_annotator:
                token = add_annotator(db, args.add_annotator)
                print(f"annotator {args.add_annotator}: token {token}")
                print("(shown once; give it to them privately: they paste it into the page's login box)")
            if args.export:
                path, rows = export_decisions(db, data_dir)
                print(f"wrote {rows} decisions to {path}")
        finally:
            db.close()
        return 0

    uvicorn = require("uvicorn", "dashboards")
    from emoforge.dashboards.server import Settings, create_app, is_loopback

    settings = Settings(data_dir=data_dir, db_url=args.db, host=args.host, port=args.port,
                        require_tokens=True if args.require_tokens else None)
    app = create_app(settings)
    state = app.state.dashboard
    sys.stderr.write(
        f"emoforge dashboard: http://{args.host if ':' not in args.host else '[' + args.host + ']'}:{args.port}/audit "
        f"({state.db.describe()}; tokens {'required' if state.require_tokens else 'not required'})\n"
    )
    if not is_loopback(args.host) and not state.require_tokens:
        raise UserError("refusing to serve beyond loopback without tokens")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
