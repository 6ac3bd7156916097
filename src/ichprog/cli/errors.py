"""Exit codes of the ``ichprog`` command line, and :class:`ConfigError`, the usage or
configuration error (exit code 2)."""


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ConfigError(ValueError):
    """A configuration or usage error: names the file, section and key (exit code 2)."""
