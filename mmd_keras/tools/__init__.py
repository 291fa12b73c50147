"""Command-line tools: ``python -m mmd_keras.tools.<name>``."""
