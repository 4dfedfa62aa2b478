"""Train/val/test splits by source video and face identity: no source and no identity in two splits.

EMO's paper keeps character ids apart between training and evaluation. Here:

1. **Identity**: a clip's face identities come from its JSON ``identity`` field (a
   curator-given or clustered id; a string or a list), from the manifest's ``identity``
   column, and from an optional mapping file (CSV or parquet with columns
   ``source_id, identity``; several rows per source allowed). A source with no identity
   is its own identity.
2. **Groups**: union-find over sources and identities. Two sources that share an
   identity (the same person in two videos) land in one group, and so on transitively;
   a group is named by its smallest source id.
3. **Assignment**: each group draws ``u = sha256(f"{seed}:{group}") / 2**256``, uniform
   in ``[0, 1)``: test when ``u < test_fraction``, val when ``u < test_fraction +
   val_fraction``, else train. A group's split depends only on its name and the seed,
   so adding sources to a corpus moves no existing group (unless a new identity link
   merges groups). Fractions are of groups, hence approximate for few groups.
4. **Small corpora**: when a split asked for is empty and train holds at least two
   groups, the train group with the smallest ``u`` moves to it (val first, then test).

:func:`leakage` checks any assignment: it lists every source and identity found in
more than one split (empty = no leak).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from emoforge.errors import UserError


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def load_identity_map(path) -> dict[str, set[str]]:
    """``source_id -> {identity, ...}`` from a CSV or parquet with columns ``source_id, identity``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no identity mapping at {path}")
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as exc:
        raise UserError(f"cannot read identity mapping {path}: {exc}") from None
    if not {"source_id", "identity"} <= set(table.columns):
        raise UserError(f"identity mapping {path} needs columns source_id and identity")
    mapping: dict[str, set[str]] = defaultdict(set)
    for source_id, identity in zip(table["source_id"].astype(str), table["identity"]):
        if isinstance(identity, str) and identity:
            mapping[source_id].add(identity)
    return dict(mapping)


def group_sources(clips: list[dict], identity_map: dict[str, set[str]] | None = None) -> dict[str, str]:
    """``source_id -> group id`` (the group's smallest source id) for ``clips = [{source_id, identities}]``."""
    forest = _UnionFind()
    for clip in clips:
        source = f"s:{clip['source_id']}"
        forest.find(source)
        for identity in clip.get("identities") or ():
            forest.union(source, f"i:{identity}")
    for source_id, identities in (identity_map or {}).items():
        for identity in identities:
            forest.union(f"s:{source_id}", f"i:{identity}")
    members: dict[str, list[str]] = defaultdict(list)
    for clip in clips:
        members[forest.find(f"s:{clip['source_id']}")].append(clip["source_id"])
    return {source: min(sources) for sources in members.values() for source in sources}


def group_draw(group: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    clips: list[dict],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    identity_map: dict[str, set[str]] | None = None,
) -> list[dict]:
    """One row per clip: ``clip_id, source_id, identities, group_id, split`` (see the module doc)."""
    group_of = group_sources(clips, identity_map)
    groups = sorted(set(group_of.values()))
    draw = {g: group_draw(g, seed) for g in groups}
    split_of = {}
    for group in groups:
        u = draw[group]
        split_of[group] = "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"
    for split, fraction in (("val", val_fraction), ("test", test_fraction)):
        in_split = [g for g in groups if split_of[g] == split]
        train = sorted((g for g in groups if split_of[g] == "train"), key=lambda g: draw[g])
        if fraction > 0 and not in_split and len(train) >= 2:
            split_of[train[0]] = split
    rows = []
    for clip in sorted(clips, key=lambda c: c["clip_id"]):
        group = group_of[clip["source_id"]]
        identities = set(clip.get("identities") or ()) | set((identity_map or {}).get(clip["source_id"], ()))
        rows.append(
            {
                "clip_id": clip["clip_id"],
                "source_id": clip["source_id"],
                "identities": ";".join(sorted(identities)),
                "group_id": group,
                "split": split_of[group],
            }
        )
    return rows


def leakage(rows: list[dict]) -> dict[str, dict[str, list[str]]]:
    """Sources and identities that occur in more than one split: ``{"source": {id: splits}, "identity": {...}}``."""
    splits_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        splits_of[("source", row["source_id"])].add(row["split"])
        # An identity-less source is its own identity: the source check covers it.
        for identity in filter(None, str(row.get("identities") or "").split(";")):
            splits_of[("identity", identity)].add(row["split"])
    report: dict[str, dict[str, list[str]]] = {"source": {}, "identity": {}}
    for (kind, name), splits in splits_of.items():
        if len(splits) > 1:
            report[kind][name] = sorted(splits)
    return report


def load_splits(path) -> dict[str, str]:
    """``clip_id -> split`` from a saved ``splits.parquet`` (to rebuild shards with the same splits)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no splits file at {path}")
    table = pd.read_parquet(path)
    if not {"clip_id", "split"} <= set(table.columns):
        raise UserError(f"{path} needs columns clip_id and split")
    return dict(zip(table["clip_id"].astype(str), table["split"].astype(str)))
