"""Builds the one Serve application from config: classifier, router and generator deployments
bound into the ingress. `serve run` / `serve deploy` use `serve_app.builder:app_builder`."""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve import Application, Deployment

from deployments.classifier.deployment import Classifier
from deployments.generator.deployment import generator_consumer
from deployments.ingress.api import Ingress
from deployments.router.deployment import Router
from serve_app.config import AppConfig

# Defaults for a single machine; a Serve config file's `deployments` entries override them.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "Ingress": {"max_ongoing_requests": 256, "ray_actor_options": {"num_cpus": 0.1}},
    "Classifier": {"max_ongoing_requests": 32, "ray_actor_options": {"num_cpus": 0.2}},
    "Router": {"max_ongoing_requests": 64, "ray_actor_options": {"num_cpus": 0.1}},
    "Generator": {"max_ongoing_requests": 1, "ray_actor_options": {"num_cpus": 1}},
}


def _deployment(cls: type, config: AppConfig, name: str) -> Deployment:
    options = {**DEFAULT_OPTIONS[name], **config.deployments.get(name, {})}
    # Ray Serve 2.60 stores an unset num_gpus as None, and its controller's usage count then
    # compares None > 0 and logs "Exception updating application state" once per deployment at
    # every start: say 0 when the config does not.
    actor_options = options.get("ray_actor_options") or {}
    if actor_options.get("num_gpus") is None:
        options["ray_actor_options"] = {**actor_options, "num_gpus": 0}
    return cast(Deployment, serve.deployment(cls)).options(name=name, **options)


def build_app(config: AppConfig) -> Application:
    classifier = _deployment(Classifier, config, "Classifier").bind(config.classifier)
    router = _deployment(Router, config, "Router").bind(config.router)
    generator_config = config.generator_deployment_config()
    generator = _deployment(generator_consumer(generator_config), config, "Generator").bind(
        generator_config
    )
    return _deployment(Ingress, config, "Ingress").bind(
        config.ingress_config(), classifier, router, generator
    )


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / `serve deploy` with a Serve config file; `args` are the
    application's `args` (Serve applies the file's `deployments` overrides itself)."""
    return build_app(AppConfig.model_validate(args).resolved())
