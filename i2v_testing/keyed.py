"""A second Ingress with API keys on, deployed next to a running open application and sharing
its classifier, router, generator, job store and queue (through their deployment handles): how
tests and benchmarks compare the two without a second model stack. The admin key reaches it
through `runtime_env` here (Ray's runtime-env agent logs it; production puts it in the nodes'
environment)."""

from __future__ import annotations

import time

import httpx

APP = "i2v-auth"
PREFIX = "/auth"


def deploy_keyed_ingress(
    app_config, open_app: str, base_url: str, admin_key: str, **auth: int
) -> str:
    """Deploys it under `PREFIX`; returns its base URL once it is ready."""
    from ray import serve

    from deployments.ingress.api import Ingress
    from deployments.ingress.config import AuthConfig

    config = app_config.ingress_config().model_copy(
        update={"auth": AuthConfig(enabled=True, **auth)}
    )
    handles = [
        serve.get_deployment_handle(name, app_name=open_app)
        for name in ("Classifier", "Router", "Generator")
    ]
    ingress = serve.deployment(Ingress).options(
        name="Ingress",
        ray_actor_options={
            "num_cpus": 0.1,
            "runtime_env": {"env_vars": {"I2V_ADMIN_KEY": admin_key}},
        },
    )
    serve.run(ingress.bind(config, *handles), name=APP, route_prefix=PREFIX, blocking=False)
    keyed_url = f"{base_url}{PREFIX}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{keyed_url}/readyz", timeout=10).status_code == 200:
                return keyed_url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("the keyed ingress did not become ready")


def remove_keyed_ingress() -> None:
    from ray import serve

    serve.delete(APP)


def new_key(keyed_url: str, admin_key: str, **body) -> dict:
    body.setdefault("name", f"key-{time.monotonic_ns()}")
    response = httpx.post(
        f"{keyed_url}/v1/admin/keys",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()
