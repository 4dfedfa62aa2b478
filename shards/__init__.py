"""Shards: WebDataset shards, the parquet manifest, and the streaming dataset."""
