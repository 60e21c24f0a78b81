// Runtime configuration: where the API, the WebSocket gateway, the browser go-live socket and RTMP ingest are.
// `/config.json` is written by `capturestream up` (locally) or by the deploy (S3 + CloudFront); when it is missing
// everything is derived from `location`, so no page ever hard-codes a port.

let loaded = null;

function derived() {
  const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return {
    apiUrl: location.origin,
    wsUrl: `${wsScheme}//${location.hostname}:3001/dev`,
    captureWsUrl: null,
    rtmpUrl: `rtmp://${location.hostname}:1935/live`,
  };
}

/** The runtime config, fetched once per page. */
export function config() {
  if (!loaded) {
    loaded = fetch('/config.json', { cache: 'no-cache' })
      .then((response) => (response.ok ? response.json() : {}))
      .catch(() => ({}))
      .then((fromServer) => ({ ...derived(), ...fromServer }));
  }
  return loaded;
}
