"""The recording function (RecordingFunction): ended broadcasts → MP4, VOD playlist, poster, storyboard, item."""
