"""The reaper (ReaperFunction): ends sessions whose ingest node died, through the normal ended.json path."""
