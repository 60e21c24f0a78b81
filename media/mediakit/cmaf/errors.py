"""Errors of the sans-IO media muxer: one base, split by who is at fault (the h11 ``_util.py`` pattern).

Rules:
- :class:`UnsupportedMedia` means "the publisher's stream cannot be muxed in process": a codec we do not mux
  (MP3, Speex, Opus, VP9, legacy FLV video other than AVC), or bytes that do not parse (:class:`MalformedMedia`,
  a subclass, so one ``except UnsupportedMedia`` covers both). The caller may fall back to an ffmpeg remuxer.
- :class:`MediaUsageError` means the caller misused the API (feeding after :meth:`Segmenter.finish`, bad
  arguments); it is a bug in the caller, never the publisher's fault.
- Parsers raise only these: a fuzz test feeds random bytes and accepts nothing else (STYLE rule 5).
"""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every error raised by :mod:`mediakit.cmaf`. Not raised directly."""

    def __init__(self, message: str) -> None:
        if type(self) is MediaError:
            raise TypeError("MediaError is abstract; raise a subclass")
        super().__init__(message)
        self.message = message


class UnsupportedMedia(MediaError):
    """The publisher sent media the in-process muxer does not handle; fall back to ffmpeg or reject."""


class MalformedMedia(UnsupportedMedia):
    """A tag body, codec configuration record or parameter set is truncated or invalid."""


class MediaUsageError(MediaError):
    """The caller used the segmenter wrongly (e.g. fed media after ``finish()``)."""
