"""ModelsUser alone: GET /v1/models, GET /v1/models/{id}, GET /health (rare). Tags: models, health."""

from loadgate.harness.locustfile import LoadProfileShape, ModelsUser

__all__ = ["LoadProfileShape", "ModelsUser"]
