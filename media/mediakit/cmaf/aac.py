"""AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) → sample rate, channels, frame size and codec string.

Rules:
- The sample rate and channel count come from the ASC, never from the FLV AudioTagHeader: FLV's SoundRate field
  tops out at "44 kHz" (value 3) and publishers send 3 for 48 kHz streams (CMAF_COST pitfall 3).
- OBS sends a 5-byte ASC ``11 90 56 e5 00``: AAC-LC 48 kHz stereo followed by the backward-compatible SBR sync
  extension (§1.6.5.2: ``syncExtensionType`` 0x2b7, extension AOT 5, ``sbrPresentFlag`` 0), i.e. plain LC. The
  extension is parsed, so an ASC that really signals SBR/PS yields ``mp4a.40.5``/``mp4a.40.29``.
- Explicit hierarchical signalling (AOT 5 or 29 first, §1.6.2.1) is parsed too.
- Timing: one raw AAC frame is 1024 samples (960 with ``frameLengthFlag``) at the *core* sample rate; with SBR the
  decoder outputs twice the samples at twice the rate, the same duration. The track timescale is the core rate.
- Only the general-audio AAC family (AOT 1-4, 6, 7, optionally with SBR/PS) is muxed; anything else (USAC,
  ER-AAC, CELP, ...) raises :class:`UnsupportedMedia`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bits import BitReader
from .errors import MalformedMedia, UnsupportedMedia

#: §1.6.3.4 samplingFrequencyIndex → Hz (13 and 14 are reserved; 15 = explicit 24-bit value).
SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
#: §1.6.3.5 channelConfiguration → channel count (0 = defined by a program_config_element).
_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
#: Object types whose GASpecificConfig we parse (AAC Main, LC, SSR, LTP, Scalable, TwinVQ).
_GA_TYPES = frozenset({1, 2, 3, 4, 6, 7})
_SBR, _PS = 5, 29
_SYNC_SBR, _SYNC_PS = 0x2B7, 0x548


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioSpecificConfig:
    """A parsed AudioSpecificConfig; ``raw`` goes verbatim into the ``esds`` DecoderSpecificInfo."""

    #: The core audio object type (2 = AAC-LC).
    object_type: int
    #: Core sample rate in Hz: the track timescale.
    sample_rate: int
    #: Output sample rate (twice the core rate when SBR is present).
    output_rate: int
    #: Channel count, or 0 when the ASC defers to a program_config_element.
    channels: int
    #: Samples per raw frame at the core rate (1024, or 960 with frameLengthFlag).
    frame_samples: int
    sbr: bool
    ps: bool
    raw: bytes

    @property
    def codec(self) -> str:
        """RFC 6381 codec string: ``mp4a.40.2`` (LC), ``mp4a.40.5`` (HE-AAC), ``mp4a.40.29`` (HE-AACv2)."""
        return f"mp4a.40.{_PS if self.ps else _SBR if self.sbr else self.object_type}"


def parse_asc(data: bytes) -> AudioSpecificConfig:
    """Parse an AudioSpecificConfig.

    Args:
        data: the ASC bytes (the body of an AAC sequence header after the two FLV header bytes).

    Returns:
        The parsed configuration.

    Raises:
        MalformedMedia: truncated or reserved values.
        UnsupportedMedia: an audio object type other than the AAC general-audio family.
    """
    if len(data) < 2:
        raise MalformedMedia(f"AudioSpecificConfig: {len(data)} bytes, need at least 2")
    r = BitReader(data, "AudioSpecificConfig")
    object_type = _object_type(r)
    sample_rate = _sample_rate(r)
    channel_config = r.u(4)
    sbr = ps = False
    output_rate = sample_rate
    if object_type in (_SBR, _PS):  # explicit hierarchical signalling
        sbr, ps = True, object_type == _PS
        output_rate = _sample_rate(r)
        object_type = _object_type(r)
    if object_type not in _GA_TYPES:
        raise UnsupportedMedia(f"AAC audio object type {object_type} is not muxed (only AAC Main/LC/SSR/LTP)")
    frame_samples = _ga_specific_config(r, object_type, channel_config)
    if channel_config and not sbr:
        sbr, ps, output_rate = _sync_extension(r, sample_rate)
    if channel_config and channel_config not in _CHANNELS:
        raise MalformedMedia(f"AudioSpecificConfig: reserved channelConfiguration {channel_config}")
    return AudioSpecificConfig(
        object_type=object_type,
        sample_rate=sample_rate,
        output_rate=output_rate if sbr else sample_rate,
        channels=_CHANNELS.get(channel_config, 0),
        frame_samples=frame_samples,
        sbr=sbr,
        ps=ps,
        raw=bytes(data),
    )


def _object_type(r: BitReader) -> int:
    value = r.u(5)
    return 32 + r.u(6) if value == 31 else value


def _sample_rate(r: BitReader) -> int:
    index = r.u(4)
    if index == 15:
        rate = r.u(24)
        if rate == 0:
            raise MalformedMedia("AudioSpecificConfig: explicit sample rate 0")
        return rate
    if index >= len(SAMPLE_RATES):
        raise MalformedMedia(f"AudioSpecificConfig: reserved samplingFrequencyIndex {index}")
    return SAMPLE_RATES[index]


def _sync_extension(r: BitReader, sample_rate: int) -> tuple[bool, bool, int]:
    """Backward-compatible SBR/PS signalling after the GASpecificConfig (§1.6.5.2); ``(sbr, ps, output rate)``."""
    if r.remaining < 16 or r.u(11) != _SYNC_SBR or _object_type(r) != _SBR or not (r.remaining and r.flag()):
        return False, False, sample_rate
    output_rate = _sample_rate(r)
    ps = r.remaining >= 12 and r.u(11) == _SYNC_PS and r.flag()
    return True, ps, output_rate


def _ga_specific_config(r: BitReader, object_type: int, channel_config: int) -> int:
    """GASpecificConfig (§4.4.1); returns the frame length. Stops before a program_config_element."""
    frame_samples = 960 if r.flag() else 1024
    if r.flag():  # dependsOnCoreCoder
        r.skip(14)
    extension_flag = r.flag()
    if channel_config == 0:
        return frame_samples  # a PCE follows; we do not need it (channels come from the FLV header instead)
    if object_type in (6, 20):
        r.skip(3)  # layerNr
    if extension_flag and r.remaining:
        r.skip(1)  # extensionFlag3 (object types 1-7 carry no other extension fields)
    return frame_samples
