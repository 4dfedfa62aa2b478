"""Dashboards: annotators audit labels in a browser; engineers see the corpus."""
