"""The S3 key layout of CaptureStream: the only module that spells an object key.

The ingest node writes objects and the functions react to them, so this layout is the contract between them
(BRIEF §4). Every key is a frozen dataclass with a ``key`` property (encode) and ``decode(key)`` turns any key
back into its dataclass, so the two directions are tested together as round trips.

Layout::

    live/<playback_id>/<session_id>/init_<epoch>.mp4        CMAF init segment (a new epoch after a codec change)
    live/<playback_id>/<session_id>/seg_<sequence>.m4s      CMAF media segment, sequence zero-padded to 8 digits
    live/<playback_id>/<session_id>/index.m3u8              live media playlist
    sessions/<playback_id>/<session_id>/<kind>.json         session manifests (started, reconnecting, ended)
    sessions/<playback_id>/<session_id>/health.json         live health samples (overwritten while live)
    vod/<playback_id>/<session_id>/recording.mp4            the finished recording (faststart MP4)
    vod/<playback_id>/<session_id>/index.m3u8               VOD playlist stitched over the live segments
    thumbs/<playback_id>/<session_id>/live_<sequence>.<jpg|webp>   live thumbnail cut from segment <sequence>
    thumbs/<playback_id>/<session_id>/<image>               poster.jpg, storyboard.vtt
    thumbs/<playback_id>/<session_id>/storyboard_<n>.jpg    storyboard sprite sheet n (from 0) of the recording

Live segments carry object metadata (:func:`segment_metadata`): the init epoch they need, whether they follow
a discontinuity, their program date time. So a function holding only a segment's key finds its init segment
without reading a playlist, and a recording can be rebuilt from the objects alone after a node crash.

Rules:
- Names (playback ids, session ids) match :data:`NAME_PATTERN`: no ``/``, no ``.``, so no ``..`` traversal and
  no way for a name to spill into another prefix (mediamtx ``IsValidPathName``).
- Listing prefixes end in ``/`` so ``live/abc/`` never matches ``live/abcd/`` (owncast).
- Derived images live under ``thumbs/``, which no trigger watches (:data:`DERIVED_PREFIXES`), so a function
  writing a thumbnail can never trigger itself (AWS Lambda docs, "recursive invocation").
- Stream keys never appear in a key: keys are built from playback ids, which are public.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from .errors import InvalidKey, InvalidName

#: A playback id, session id or channel id: 1–64 characters of ``[A-Za-z0-9_-]``, starting alphanumeric.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

LIVE_PREFIX = "live/"
SESSIONS_PREFIX = "sessions/"
VOD_PREFIX = "vod/"
THUMBS_PREFIX = "thumbs/"

#: Prefixes whose objects trigger functions.
TRIGGER_PREFIXES = (LIVE_PREFIX, SESSIONS_PREFIX, VOD_PREFIX)
#: Prefixes for objects that functions derive; never watched by a trigger.
DERIVED_PREFIXES = (THUMBS_PREFIX,)

_SEQUENCE_DIGITS = 8
_MAX_SEQUENCE = 10**_SEQUENCE_DIGITS - 1


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid playback/session/channel id.

    Raises:
        InvalidName: when it is empty, too long, or has characters outside ``[A-Za-z0-9_-]``.
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidName(f"invalid {what} {name!r}: use 1-64 characters of A-Z a-z 0-9 _ -")
    return name


def _validate_sequence(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEQUENCE:
        raise InvalidName(f"invalid {what} {value!r}: must be an integer in 0..{_MAX_SEQUENCE}")
    return value


class ManifestKind(enum.StrEnum):
    """Which moment of a session a manifest records."""

    #: Media is flowing: written when the publisher is accepted, and again (with a higher ``revision`` in the
    #: body) when it comes back inside the reconnect window.
    STARTED = "started"
    #: The publisher dropped; the broadcast waits for it to come back within the reconnect window.
    RECONNECTING = "reconnecting"
    #: The broadcast is over (publisher stopped, or its reconnect window ran out).
    ENDED = "ended"


class ImageKind(enum.StrEnum):
    """Per-session images a function derives from the recording."""

    #: Poster frame shown on the VOD card.
    POSTER = "poster.jpg"
    #: WebVTT cues mapping media time to sprite tiles (``storyboard_<n>.jpg#xywh=...``).
    STORYBOARD_VTT = "storyboard.vtt"


class ImageFormat(enum.StrEnum):
    """Encodings of a live thumbnail (the same frame in each)."""

    #: Every browser.
    JPEG = "jpg"
    #: ~30 % smaller at the same quality; every current browser.
    WEBP = "webp"


@dataclass(frozen=True, kw_only=True)
class _SessionKey:
    """Fields every key shares: the public playback id and the session (broadcast) id."""

    playback_id: str
    session_id: str

    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        validate_name(self.playback_id, "playback id")
        validate_name(self.session_id, "session id")

    @property
    def session_prefix(self) -> str:
        """Listing prefix of this key's session folder (ends in ``/``)."""
        return f"{self.prefix}{self.playback_id}/{self.session_id}/"

    @property
    def key(self) -> str:  # pragma: no cover - every concrete key overrides it
        raise NotImplementedError

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, kw_only=True)
class LiveInit(_SessionKey):
    """CMAF initialization segment; ``epoch`` increments when codec parameters change (after a reconnect)."""

    epoch: int = 0
    prefix: ClassVar[str] = LIVE_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        _validate_sequence(self.epoch, "init epoch")

    @property
    def key(self) -> str:
        return f"{self.session_prefix}init_{self.epoch}.mp4"


@dataclass(frozen=True, kw_only=True)
class LiveSegment(_SessionKey):
    """CMAF media segment number ``sequence`` (the HLS media sequence number)."""

    sequence: int
    prefix: ClassVar[str] = LIVE_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        _validate_sequence(self.sequence, "segment sequence")

    @property
    def key(self) -> str:
        return f"{self.session_prefix}seg_{self.sequence:0{_SEQUENCE_DIGITS}d}.m4s"


@dataclass(frozen=True, kw_only=True)
class LivePlaylist(_SessionKey):
    """The live media playlist of a session."""

    prefix: ClassVar[str] = LIVE_PREFIX

    @property
    def key(self) -> str:
        return f"{self.session_prefix}index.m3u8"


@dataclass(frozen=True, kw_only=True)
class SessionManifest(_SessionKey):
    """A small JSON document the ingest node writes when a session starts or ends."""

    kind: ManifestKind
    prefix: ClassVar[str] = SESSIONS_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kind", ManifestKind(self.kind))

    @property
    def key(self) -> str:
        return f"{self.session_prefix}{self.kind.value}.json"


@dataclass(frozen=True, kw_only=True)
class HealthManifest(_SessionKey):
    """The session's live health samples (``models.HealthManifestBody``), rewritten every few seconds."""

    prefix: ClassVar[str] = SESSIONS_PREFIX

    @property
    def key(self) -> str:
        return f"{self.session_prefix}health.json"


@dataclass(frozen=True, kw_only=True)
class VodRecording(_SessionKey):
    """The finished recording of a session: one faststart MP4."""

    prefix: ClassVar[str] = VOD_PREFIX

    @property
    def key(self) -> str:
        return f"{self.session_prefix}recording.mp4"


@dataclass(frozen=True, kw_only=True)
class VodPlaylist(_SessionKey):
    """The VOD media playlist of a session (stitches reconnects with discontinuities)."""

    prefix: ClassVar[str] = VOD_PREFIX

    @property
    def key(self) -> str:
        return f"{self.session_prefix}index.m3u8"


@dataclass(frozen=True, kw_only=True)
class LiveThumbnail(_SessionKey):
    """A live thumbnail cut from segment ``sequence`` (a new key each time, so CDNs never serve a stale one)."""

    sequence: int
    image_format: ImageFormat = ImageFormat.JPEG
    prefix: ClassVar[str] = THUMBS_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        _validate_sequence(self.sequence, "thumbnail sequence")
        object.__setattr__(self, "image_format", ImageFormat(self.image_format))

    @property
    def key(self) -> str:
        return f"{self.session_prefix}live_{self.sequence:0{_SEQUENCE_DIGITS}d}.{self.image_format.value}"


@dataclass(frozen=True, kw_only=True)
class StoryboardSprite(_SessionKey):
    """Sprite sheet ``index`` (from 0) of a recording's storyboard; the VTT names its tiles."""

    index: int
    prefix: ClassVar[str] = THUMBS_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index <= 999:
            raise InvalidName(f"invalid storyboard sprite index {self.index!r}: must be an integer in 0..999")

    @property
    def key(self) -> str:
        return f"{self.session_prefix}storyboard_{self.index:03d}.jpg"


@dataclass(frozen=True, kw_only=True)
class SessionImage(_SessionKey):
    """A per-session derived image: poster or storyboard."""

    kind: ImageKind
    prefix: ClassVar[str] = THUMBS_PREFIX

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kind", ImageKind(self.kind))

    @property
    def key(self) -> str:
        return f"{self.session_prefix}{self.kind.value}"


MediaKey = (
    LiveInit
    | LiveSegment
    | LivePlaylist
    | SessionManifest
    | HealthManifest
    | VodRecording
    | VodPlaylist
    | LiveThumbnail
    | SessionImage
    | StoryboardSprite
)

_NAME = NAME_PATTERN.pattern
_SEQ = rf"\d{{{_SEQUENCE_DIGITS}}}"
_DECODERS: tuple[tuple[re.Pattern[str], type, str | None], ...] = (
    (re.compile(rf"live/(?P<p>{_NAME})/(?P<s>{_NAME})/init_(?P<n>\d{{1,{_SEQUENCE_DIGITS}}})\.mp4"), LiveInit, "epoch"),
    (re.compile(rf"live/(?P<p>{_NAME})/(?P<s>{_NAME})/seg_(?P<n>{_SEQ})\.m4s"), LiveSegment, "sequence"),
    (re.compile(rf"live/(?P<p>{_NAME})/(?P<s>{_NAME})/index\.m3u8"), LivePlaylist, None),
    (
        re.compile(rf"sessions/(?P<p>{_NAME})/(?P<s>{_NAME})/(?P<k>started|reconnecting|ended)\.json"),
        SessionManifest,
        "kind",
    ),
    (re.compile(rf"sessions/(?P<p>{_NAME})/(?P<s>{_NAME})/health\.json"), HealthManifest, None),
    (re.compile(rf"vod/(?P<p>{_NAME})/(?P<s>{_NAME})/recording\.mp4"), VodRecording, None),
    (re.compile(rf"vod/(?P<p>{_NAME})/(?P<s>{_NAME})/index\.m3u8"), VodPlaylist, None),
    (
        re.compile(rf"thumbs/(?P<p>{_NAME})/(?P<s>{_NAME})/live_(?P<n>{_SEQ})\.(?P<f>jpg|webp)"),
        LiveThumbnail,
        "sequence",
    ),
    (
        re.compile(rf"thumbs/(?P<p>{_NAME})/(?P<s>{_NAME})/(?P<k>poster\.jpg|storyboard\.vtt)"),
        SessionImage,
        "kind",
    ),
    (re.compile(rf"thumbs/(?P<p>{_NAME})/(?P<s>{_NAME})/storyboard_(?P<n>\d{{3}})\.jpg"), StoryboardSprite, "index"),
)


def decode(key: str) -> MediaKey:
    """Turn an S3 object key (already URL-decoded) into its typed key.

    Args:
        key: the object key exactly as stored, e.g. ``live/abc/20261125T1535Z-x1/seg_00000042.m4s``.

    Returns:
        The dataclass whose ``key`` property gives back ``key``.

    Raises:
        InvalidKey: when ``key`` is not part of the layout.
    """
    for pattern, cls, extra in _DECODERS:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        fields: dict[str, object] = {"playback_id": match["p"], "session_id": match["s"]}
        if extra in ("epoch", "sequence", "index"):
            fields[extra] = int(match["n"])
        if "f" in match.groupdict():
            fields["image_format"] = match["f"]
        elif extra == "kind":
            fields["kind"] = match["k"]
        decoded = cls(**fields)
        if decoded.key != key:  # e.g. init_007.mp4: same number, different spelling
            break
        return decoded
    raise InvalidKey(f"not a CaptureStream media key: {key!r}")


def classify(key: str) -> type | None:
    """The key class whose layout ``key`` matches, or None: a cheap label (a metric's, a log's) for a key this
    process wrote itself. Unlike :func:`decode` it builds nothing and does not check that the key spells its
    fields canonically, so it is no validation of a key from outside."""
    for pattern, cls, _ in _DECODERS:
        if pattern.fullmatch(key) is not None:
            return cls
    return None


def session_prefix(prefix: str, playback_id: str, session_id: str) -> str:
    """Listing prefix of one session under ``prefix`` (one of the ``*_PREFIX`` constants), ending in ``/``."""
    if prefix not in TRIGGER_PREFIXES + DERIVED_PREFIXES:
        raise InvalidKey(f"unknown top-level prefix {prefix!r}")
    return f"{prefix}{validate_name(playback_id, 'playback id')}/{validate_name(session_id, 'session id')}/"


def playback_prefix(prefix: str, playback_id: str) -> str:
    """Listing prefix of every session of one playback id under ``prefix``, ending in ``/``."""
    if prefix not in TRIGGER_PREFIXES + DERIVED_PREFIXES:
        raise InvalidKey(f"unknown top-level prefix {prefix!r}")
    return f"{prefix}{validate_name(playback_id, 'playback id')}/"


def is_derived(key: str) -> bool:
    """True when ``key`` lies under a prefix that functions write and no trigger watches."""
    return key.startswith(DERIVED_PREFIXES)


# ---------------------------------------------------------------------------------------------- object metadata

#: ``x-amz-meta-*`` names (without the prefix) a live segment carries.
META_EPOCH = "init-epoch"
META_DISCONTINUITY = "discontinuity"
META_PROGRAM_DATE_TIME = "program-date-time"


@dataclass(frozen=True, kw_only=True)
class SegmentMetadata:
    """What a live segment's object metadata says about it (see the module docstring)."""

    #: The init segment it needs: ``LiveInit(epoch=...)`` of the same session.
    epoch: int
    #: First segment after a publisher reconnect or a codec change (EXT-X-DISCONTINUITY).
    discontinuity: bool = False
    #: ISO 8601 UTC wall-clock time of its first sample, as in the live playlist's EXT-X-PROGRAM-DATE-TIME.
    program_date_time: str | None = None

    def headers(self) -> dict[str, str]:
        """User metadata for a PutObject (names without ``x-amz-meta-``; boto3's ``Metadata=`` takes this)."""
        values = {META_EPOCH: str(self.epoch), META_DISCONTINUITY: "1" if self.discontinuity else "0"}
        if self.program_date_time:
            values[META_PROGRAM_DATE_TIME] = self.program_date_time
        return values

    @classmethod
    def parse(cls, metadata: dict[str, str]) -> SegmentMetadata | None:
        """Read it back from S3's ``Metadata`` (keys lower-cased by S3); None when the segment carries none."""
        values = {name.lower(): value for name, value in metadata.items()}
        raw = values.get(META_EPOCH)
        if raw is None or not raw.isdigit():
            return None
        return cls(
            epoch=_validate_sequence(int(raw), "init epoch"),
            discontinuity=values.get(META_DISCONTINUITY) == "1",
            program_date_time=values.get(META_PROGRAM_DATE_TIME),
        )
