"""Storage: the S3 PUT client, the ordered per-stream uploader and the on-disk spool behind it."""
