"""vsearch: video-surveillance evidence search.

Data flows one way: video -> frames -> detections -> tracks -> crops -> embeddings -> index + catalog.
A query flows: image -> embedding -> filtered index search -> sightings -> clips.
"""

from __future__ import annotations

__version__ = "0.1.0"
