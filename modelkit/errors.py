"""The errors of the model repository: one hierarchy for modelkit's callers to catch."""


class ModelRepositoryError(Exception):
    """Base class: a model version cannot be found, read or trusted."""


class ModelNotFoundError(ModelRepositoryError):
    pass


class MetadataError(ModelRepositoryError):
    """metadata.json (or config.json) is missing, unreadable, or does not hold what it must."""


class ArtifactIntegrityError(ModelRepositoryError):
    pass
