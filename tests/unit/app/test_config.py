"""The Serve config files parse with Ray's own schema into our AppConfig, and stay in step."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from i2v_testing.paths import ROOT, TINY_CONFIG
from serve_app.config import AppConfig, load_serve_file

CLUSTER_CONFIG = ROOT / "cluster" / "serve_config.yaml"


def test_tiny_profile_loads_with_deployment_options():
    serve_file = load_serve_file(TINY_CONFIG)
    assert (serve_file.host, serve_file.port) == ("127.0.0.1", 8000)
    app = serve_file.app
    assert set(app.deployments) == {"Ingress", "Classifier", "Router", "Generator"}
    # The generator takes as many jobs at once as it may batch.
    assert app.deployments["Generator"]["max_ongoing_requests"] == app.generator.max_batch_size
    # Local paths are made absolute so replicas in other working directories find them.
    assert app.generator.model == str(ROOT / "models" / "tiny" / "generator")
    assert app.classifier.engine == "imagenet"  # real ImageNet weights from a package
    assert app.classifier.imagenet.weights.startswith("package:")
    assert app.stores.artifact_dir.startswith("/")


def test_cluster_profile_loads_with_gpu_fractions_and_queue_autoscaling():
    app = load_serve_file(CLUSTER_CONFIG).app
    generator = app.deployments["Generator"]
    assert generator["ray_actor_options"]["num_gpus"] == 0.5
    policy = generator["autoscaling_config"]["policy"]
    assert policy["policy_function"] == "deployments.generator.autoscaling:GeneratorQueuePolicy"
    assert policy["policy_kwargs"]["queue_name"] == app.queue.queue_name
    assert app.generator.model == "ali-vilab/i2vgen-xl"  # a hub id stays a hub id
    assert app.router.categories["person"].num_inference_steps == 60


@pytest.mark.parametrize("path", [TINY_CONFIG, CLUSTER_CONFIG], ids=["tiny", "cluster"])
def test_every_deployment_bounds_its_ongoing_and_queued_requests(path):
    """Unbounded handle queues would turn overload into memory growth and timeouts."""
    for name, options in load_serve_file(path).app.deployments.items():
        assert options.get("max_ongoing_requests", 0) > 0, name
        assert options.get("max_queued_requests", -1) > 0, name


def test_rayservice_embeds_the_cluster_serve_config():
    rayservice = yaml.safe_load((ROOT / "cluster" / "rayservice.yaml").read_text())
    embedded = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load(CLUSTER_CONFIG.read_text()), (
        "run scripts/render_rayservice.py after editing cluster/serve_config.yaml"
    )


def test_environment_overrides_the_stores(monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.5:6379/2")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@db/i2v")
    monkeypatch.setenv("I2V_ARTIFACT_DIR", str(tmp_path))
    app = load_serve_file(TINY_CONFIG).app
    assert app.queue.redis_url == "redis://10.0.0.5:6379/2"
    assert app.stores.database_url == "postgresql+psycopg://u:p@db/i2v"
    assert app.stores.artifact_dir == str(tmp_path)
    assert app.queue.task_processor_config().adapter_config.broker_url == app.queue.redis_url


def test_inconsistent_configs_are_rejected():
    with pytest.raises(ValidationError, match="classifier categories"):
        AppConfig.model_validate({"classifier": {"categories": {"person": ["a person"]}}})
    with pytest.raises(ValidationError, match="unknown deployments"):
        AppConfig.model_validate({"deployments": {"Upscaler": {}}})
    with pytest.raises(ValidationError):
        AppConfig.model_validate({"router": {"limits": {"min_frames": 10, "max_frames": 5}}})
    with pytest.raises(ValidationError):
        AppConfig.model_validate({"stores": {"databse_url": "typo"}})
