"""Labeling: face boxes, 6-DoF head pose, rotation speed buckets, speech (paper §3.2, §4.1)."""
