"""Publishers' ways in: the RTMP listener, the browser go-live WebSocket listener, and the stream-key checks."""
