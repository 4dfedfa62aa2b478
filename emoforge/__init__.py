"""emoforge: build EMO's talking-head training corpus and train EMO from it.

The user's top-level folders install as subpackages of this namespace:
``emoforge.curation`` (``curation/``), ``emoforge.labeling`` (``labeling/``),
``emoforge.shards``, ``emoforge.training``, ``emoforge.dashboards``. Importing
``emoforge`` pulls in none of Ray, MediaPipe, torch or a web stack.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emoforge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
