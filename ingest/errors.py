"""docqa's exceptions. Each message says what happened and what to do about it.

The library raises these; the CLI and the UI turn them into one clean line and an exit code.
"""

from __future__ import annotations


class DocqaError(Exception):
    """Base class: ``str(err)`` is a one-line message that ends with the fix."""

    exit_code = 1


class ConfigError(DocqaError):
    """A setting has a bad value."""

    exit_code = 2


class ModelError(DocqaError):
    """A model is missing, corrupt, or cannot be loaded."""


class ModelNotFound(ModelError):
    pass


class ChecksumMismatch(ModelError):
    pass


class ProvisioningError(ModelError):
    """Getting a bundled model from the package registry failed."""


class IndexNotFound(DocqaError):
    pass


class IndexCorrupt(DocqaError):
    pass


class IndexBusy(DocqaError):
    """Another process is writing the index."""


class IndexUnavailable(DocqaError):
    """The index cannot be read or written now (disk full, read-only folder, file-size limit);
    unlike ``IndexCorrupt``, what it holds is intact."""


class EmbedderMismatch(DocqaError):
    """The index was built with another embedder than the one asked for."""


class NothingToIndex(DocqaError):
    """The folder is missing or holds no file docqa can read."""


class LoadError(DocqaError):
    """One file could not be read; the ingestion skips it with this reason."""


class EmptyQuestion(DocqaError):
    exit_code = 2


class EmptyScope(DocqaError):
    """A question's scope (documents, folders, languages) matches nothing in the index."""

    exit_code = 2


class GeneratorUnavailable(DocqaError):
    """The generator could not be loaded or reached."""
