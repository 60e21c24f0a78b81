"""Domain models of CaptureStream: channels, stream keys, and the session manifest contract.

Rules:
- Models are frozen pydantic models: they validate what crosses a boundary (DynamoDB items, JSON in S3, API
  bodies) and are immutable inside the code.
- A stream key is a secret. Only its SHA-256 hash is ever stored (:attr:`Channel.stream_key_hash`); the clear
  key exists once, in the :class:`IssuedStreamKey` returned at creation or rotation. Keys are compared with
  :func:`hmac.compare_digest` (owncast compared with ``!=``; we don't).
- The playback id (public, in URLs and S3 keys) is never derived from the stream key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .errors import InvalidName, Unauthorized
from .keys import NAME_PATTERN, validate_name

#: Stream keys look like ``live_<channel id>_<secret>`` (Twitch-style, so streamers recognise it). The channel
#: id lets the ingest node fetch one item; the 32-character base62 secret carries ~190 bits of entropy.
STREAM_KEY_PATTERN = re.compile(r"live_(?P<channel_id>[a-z0-9]{12})_(?P<secret>[A-Za-z0-9]{32})")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def utc_now() -> datetime:
    """Current time, timezone-aware UTC (the only clock the models use)."""
    return datetime.now(UTC)


def _random_string(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_channel_id() -> str:
    """A random 12-character channel id (``[a-z0-9]``, ~62 bits)."""
    return _random_string(_ID_ALPHABET, 12)


def new_playback_id() -> str:
    """A random 16-character public playback id, independent of any stream key."""
    return _random_string(_ID_ALPHABET, 16)


def new_session_id(now: datetime | None = None) -> str:
    """A time-sortable session (broadcast) id, e.g. ``20261125T153527Z-k3x9q2``."""
    stamp = (now or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_random_string(_ID_ALPHABET, 6)}"


def hash_stream_key(stream_key: str) -> str:
    """SHA-256 hex digest of a stream key (keys are random, so no slow KDF is needed; GitHub tokens do the same)."""
    # surrogateescape: keys arrive from the wire and may hold undecodable bytes; they must hash, not crash.
    return hashlib.sha256(stream_key.encode("utf-8", "surrogateescape")).hexdigest()


def stream_key_channel_id(stream_key: str) -> str:
    """The channel id a stream key claims to belong to.

    Raises:
        Unauthorized: when the key is not shaped like a CaptureStream stream key. The message never echoes it.
    """
    match = STREAM_KEY_PATTERN.fullmatch(stream_key or "")
    if match is None:
        raise Unauthorized("malformed stream key")
    return match["channel_id"]


class IssuedStreamKey(BaseModel):
    """A freshly generated stream key: the clear value (shown once) and the hash that gets stored."""

    model_config = ConfigDict(frozen=True)

    value: SecretStr
    hash: str

    @classmethod
    def generate(cls, channel_id: str) -> IssuedStreamKey:
        """Generate a new key for ``channel_id``."""
        value = f"live_{channel_id}_{_random_string(_SECRET_ALPHABET, 32)}"
        return cls(value=SecretStr(value), hash=hash_stream_key(value))


#: How long after an owner's end-stream request the ingest node refuses the channel's publishes. OBS reconnects
#: on its own with the same key (after 2, 3, 4.4, 6.5, 9.6 s...: ../OBS.md), which would start the stream again
#: at once; a minute stops that loop while a streamer who really means to go live again can after a short wait.
#: To stop an encoder for good, rotate the key.
END_STREAM_HOLD = timedelta(seconds=60)


class Channel(BaseModel):
    """A streamer's channel: who owns it, its public playback id, and the hash of its stream key."""

    model_config = ConfigDict(frozen=True)

    channel_id: str = Field(pattern=r"^[a-z0-9]{12}$")
    name: str = Field(min_length=1, max_length=100)
    owner: str = Field(min_length=1, max_length=256)
    playback_id: str
    stream_key_hash: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False)
    created_at: datetime
    key_rotated_at: datetime
    #: A clean stop ("Stop Streaming": FCUnpublish/deleteStream) keeps the broadcast open for the reconnect window
    #: instead of ending it at once (for streamers who stop and start again to switch scenes or encoders).
    wait_on_unpublish: bool = False
    #: When the owner last asked to end the channel's stream (``POST /api/channels/{id}/end-stream``): the ingest
    #: node ends a broadcast whose publish was accepted before this changed, and holds new publishes for a while.
    end_requested_at: datetime | None = None

    def publish_held_until(self) -> datetime | None:
        """Until when an end-stream request refuses new publishes (see :data:`END_STREAM_HOLD`), or None."""
        return None if self.end_requested_at is None else self.end_requested_at + END_STREAM_HOLD

    @field_validator("playback_id")
    @classmethod
    def _valid_playback_id(cls, value: str) -> str:
        return validate_name(value, "playback id")

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ord(ch) < 32 for ch in value):
            raise InvalidName("channel name must be 1-100 printable characters")
        return value

    def verify_stream_key(self, stream_key: str) -> bool:
        """True when ``stream_key`` is this channel's current key (constant-time comparison of hashes)."""
        return hmac.compare_digest(hash_stream_key(stream_key), self.stream_key_hash)

    @classmethod
    def create(cls, *, name: str, owner: str, now: datetime | None = None) -> tuple[Channel, IssuedStreamKey]:
        """A new channel with fresh ids and a fresh stream key (returned once, alongside)."""
        created = now or utc_now()
        channel_id = new_channel_id()
        issued = IssuedStreamKey.generate(channel_id)
        channel = cls(
            channel_id=channel_id,
            name=name,
            owner=owner,
            playback_id=new_playback_id(),
            stream_key_hash=issued.hash,
            created_at=created,
            key_rotated_at=created,
        )
        return channel, issued

    def with_rotated_key(self, now: datetime | None = None) -> tuple[Channel, IssuedStreamKey]:
        """This channel with a new stream key; the old key stops working once the new item is stored."""
        issued = IssuedStreamKey.generate(self.channel_id)
        rotated = self.model_copy(update={"stream_key_hash": issued.hash, "key_rotated_at": now or utc_now()})
        return rotated, issued


class StreamStatus(enum.StrEnum):
    """Where a broadcast is in its life."""

    #: Media is flowing from a publisher.
    LIVE = "live"
    #: The publisher dropped; a reconnect inside the window continues the same broadcast.
    RECONNECTING = "reconnecting"
    #: The broadcast is over; its recording is (being) finalized.
    ENDED = "ended"


class MediaInfo(BaseModel):
    """What the publisher sends, as the ingest node measured it (all optional: OBS may omit metadata)."""

    model_config = ConfigDict(frozen=True)

    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = Field(default=None, ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    frame_rate: float | None = Field(default=None, gt=0, le=1000)
    bitrate_kbps: float | None = Field(default=None, ge=0)
    keyframe_interval: float | None = Field(default=None, gt=0)


class _SessionManifest(BaseModel):
    """Ids every manifest of a session carries (they must match its key)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel_id: str
    playback_id: str
    session_id: str

    @field_validator("channel_id", "playback_id", "session_id")
    @classmethod
    def _valid_names(cls, value: str) -> str:
        if NAME_PATTERN.fullmatch(value) is None:
            raise ValueError(f"invalid id {value!r}")
        return value


class SessionManifestBody(_SessionManifest):
    """The JSON the ingest node writes to ``sessions/<playback_id>/<session_id>/{started,ended}.json``.

    ``ended_at``/``duration`` are set only in ``ended.json``. ``revision`` orders the manifests of one session:
    the node increments it for every state change (drop → ``reconnecting.json``, return → ``started.json``
    again), so the catalog can drop a stale manifest that S3 delivered late. Unknown fields are ignored so that a
    newer node can add fields without breaking older functions.
    """

    started_at: datetime
    ended_at: datetime | None = None
    duration: float | None = Field(default=None, ge=0)
    media: MediaInfo = Field(default_factory=MediaInfo)
    revision: int = Field(default=0, ge=0)
    #: The channel's name when the broadcast started (shown on stream cards).
    title: str | None = Field(default=None, max_length=200)
    ingest_node: str | None = None
    reason: str | None = None


#: Most samples one health manifest may carry (the node sends its last minute: 12).
MAX_MANIFEST_SAMPLES = 120


class HealthSample(BaseModel):
    """What arrived from the publisher over one short window (a few seconds) ending at ``t``.

    Rates are over media time (what the encoder produced in the window); ``keyframe_interval`` is the latest gap
    between keyframes, or the time since the last one when that is already longer (a stream that stopped sending
    keyframes shows it before the next one arrives). ``None`` where the window held nothing to measure (no video).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: Wall-clock end of the window (UTC): the sample's identity, so overlapping manifests merge.
    t: datetime
    bitrate_kbps: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    frame_rate: float | None = Field(default=None, ge=0, le=1000, allow_inf_nan=False)
    keyframe_interval: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class HealthManifestBody(_SessionManifest):
    """The JSON the ingest node writes to ``sessions/<playback_id>/<session_id>/health.json`` while it is live.

    One object per session, overwritten every few seconds with the newest samples (oldest first) and the current
    :class:`MediaInfo`; each version repeats the previous samples, so a lost or late delivery leaves no gap.
    """

    media: MediaInfo = Field(default_factory=MediaInfo)
    samples: list[HealthSample] = Field(default_factory=list, max_length=MAX_MANIFEST_SAMPLES)
