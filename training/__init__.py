"""Training: the EMO network and its three training stages (paper §3.2-3.3)."""
