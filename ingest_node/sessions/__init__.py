"""Sessions: which broadcast a publisher joins (registry), a broadcast's life and output, and its measurements."""
