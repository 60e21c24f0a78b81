"""CaptureStream's shared domain package (the Lambda layer; also used by the ingest node and devstack).

Modules: ``keys`` (S3 key layout), ``events`` (raw Lambda payloads → domain events), ``messages`` (WebSocket
message contract), ``models`` (channels, stream keys, manifests), ``table`` (DynamoDB item mapping),
``settings`` (typed env settings), ``errors`` (domain errors). No boto3, aiobotocore or asyncio imports here.
"""

__version__ = "0.1.0"
