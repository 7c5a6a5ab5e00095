"""One exception family; callers (CLI, API) tell the kinds apart and map them to exit codes / HTTP status."""

from __future__ import annotations


class VSearchError(Exception):
    """Base of every error vsearch raises on purpose. The message is meant for the user."""


class InputError(VSearchError):
    """The caller gave something unusable: a non-image, a bad time range, an unknown camera format."""


class TooLargeError(InputError):
    """An input over a size limit (e.g. an image over the pixel limit): refused before any work is done on it."""


class VideoError(InputError):
    """A video (or folder of frames) cannot be opened or decoded; the message names the file."""


class NotFoundError(VSearchError):
    """An id (sighting, clip, video, job) that does not exist."""


class PermissionDeniedError(VSearchError):
    """The caller may see the thing but not do this to it (e.g. share a case they do not own)."""


class ModelError(VSearchError):
    """Model weights are missing, corrupt (checksum mismatch) or cannot be loaded."""


class IndexStateError(VSearchError):
    """The index or catalog is inconsistent with the settings (e.g. built with another embedder)."""


class StorageError(VSearchError):
    """The data dir cannot take a write (its disk is full, or it is read-only); nothing half-written is kept."""


class LeaseLostError(VSearchError):
    """Another process took over a video's ingest (this one stalled past its lease); this one must stop."""


class ConfigError(VSearchError):
    """A setting from the environment (VSEARCH_<NAME>) is malformed; the message names the variable."""


class BusyError(VSearchError):
    """The work asked for is already running (one adaptation at a time); nothing wrong, try again later."""
