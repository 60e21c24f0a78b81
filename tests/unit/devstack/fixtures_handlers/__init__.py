"""Tiny Lambda handler modules for ``test_lambda_runtime.py`` (imported through ``LocalFunction``)."""
