"""Curation: from URL lists and video dumps to kept talking-head clips (DESIGN.md §3).

``emoforge.curation.footage`` renders talking-head footage whose truth is known, for
tests, the demo, benchmarks and calibrating thresholds (DESIGN.md §5).
"""
