"""ModelsUser: GET /v1/models, GET /v1/models/{id}, GET /health (rare). Tags: models, health."""

import _repo_path  # noqa: F401  (before importing loadgate)

from loadgate.plugin import ModelsUserBase
from loadgate.profiles import LoadProfileShape  # noqa: F401  (inert without --profile)


class ModelsUser(ModelsUserBase):
    weight = 10  # --models-weight / LOADGATE_MODELS_WEIGHT overrides at start
