"""The plugin's FastAPI app: Airflow's auth on every route (docs too), per-DAG visibility, redacted errors."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_SPEC

pytestmark = pytest.mark.component

ROUTES = (
    "/",
    "/pipeline/churn",
    "/dag/churn_training",
    "/static/app.js",
    "/api/pipelines",
    "/api/overview",
    "/docs",
    "/redoc",
    "/openapi.json",
)


def _clear_token_caches(manager_cls: Any) -> None:
    # The signer and validator are cached per class with the JWT secret of their first use.
    manager_cls._get_token_signer.__func__.cache_clear()
    manager_cls._get_token_validator.__func__.cache_clear()


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The api-server's simple auth manager as the api-server holds it, with a fresh JWT secret.

    Airflow checks each token's id against its ``revoked_token`` table; without a metadata
    database here, that table is a set (``manager.revoked``).
    """
    import airflow.api_fastapi.app as airflow_app
    from airflow.api_fastapi.auth.managers import base_auth_manager
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    _clear_token_caches(SimpleAuthManager)
    manager = SimpleAuthManager()
    revoked: set[str] = set()
    monkeypatch.setattr(base_auth_manager.RevokedToken, "is_revoked", classmethod(lambda cls, jti: jti in revoked))
    monkeypatch.setattr(manager, "revoked", revoked, raising=False)
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", manager)
    yield manager
    _clear_token_caches(SimpleAuthManager)


def _token(manager: Any, role: str | None) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(manager.generate_jwt(SimpleAuthManagerUser(username=f"user-{role}", role=role)))


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlops_home: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(EXAMPLE_SPEC, folder / "churn.yaml")
    (folder / "broken.yaml").write_text("name: [not, a, name]\n")
    monkeypatch.setenv("AIRFLOW_MLOPS_PIPELINES_DIR", str(folder))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return folder


def _client(**kwargs: Any) -> Any:
    from fastapi.testclient import TestClient

    from airflow_mlops.ui.web import create_app

    return TestClient(create_app(**kwargs))


def test_without_a_login_every_route_docs_included_is_refused(auth, specs, monkeypatch):
    client = _client()
    for route in ROUTES:
        assert client.get(route).status_code == 401, route
        bad = client.get(route, headers={"Authorization": "Bearer not-a-jwt"})
        assert bad.status_code == 403, route  # an invalid token: Airflow's own answer
        assert client.get(route, cookies={"_token": "not-a-jwt"}).status_code == 403, route
    # A revoked token (a logout) and a token signed with another secret are no login either.
    import jwt

    token = _token(auth, "admin")
    assert client.get("/api/pipelines", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    auth.revoked.add(jwt.decode(token, options={"verify_signature": False})["jti"])
    assert client.get("/api/pipelines", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_LEEWAY", "0")
    _clear_token_caches(type(auth))
    expired = auth.generate_jwt(SimpleAuthManagerUser(username="old", role="admin"), expiration_time_in_seconds=-60)
    answer = client.get("/api/pipelines", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401 and answer.json()["detail"] == "Token Expired"
    other = _token(auth, "admin")
    _clear_token_caches(type(auth))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    assert client.get("/api/pipelines", headers={"Authorization": f"Bearer {other}"}).status_code == 403


def test_a_viewer_reads_the_page_the_api_and_the_docs_with_a_token_or_the_ui_cookie(auth, specs):
    client = _client()
    headers = {"Authorization": f"Bearer {_token(auth, 'viewer')}"}
    for route in ROUTES:
        assert client.get(route, headers=headers).status_code == 200, route
    pipelines = client.get("/api/pipelines", headers=headers).json()
    assert [p.get("name") for p in pipelines if "error" not in p] == ["churn"]
    assert any(p["spec"].endswith("broken.yaml") and "error" in p for p in pipelines)
    assert "/api/pipelines" in client.get("/openapi.json", headers=headers).json()["paths"]
    cookie = client.get("/api/pipelines", cookies={"_token": _token(auth, "viewer")})
    assert cookie.status_code == 200 and cookie.json() == pipelines


def test_the_docs_pages_link_the_openapi_document_under_the_plugins_mount(auth, specs):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mlops.ui.web import create_app

    parent = FastAPI()
    parent.mount("/mlops", create_app())  # as the api-server mounts fastapi_apps at url_prefix
    client = TestClient(parent)
    headers = {"Authorization": f"Bearer {_token(auth, 'viewer')}"}
    assert client.get("/mlops/openapi.json").status_code == 401
    for page in ("/mlops/docs", "/mlops/redoc"):
        answer = client.get(page, headers=headers)
        assert answer.status_code == 200 and "/mlops/openapi.json" in answer.text, page


def test_a_user_without_read_access_sees_no_pipeline_and_no_spec_error(auth, specs):
    client = _client()
    headers = {"Authorization": f"Bearer {_token(auth, None)}"}  # logged in, no role: no permission
    assert client.get("/api/pipelines", headers=headers).json() == []
    overview = client.get("/api/overview", headers=headers).json()
    assert overview["pipelines"] == [] and overview["spec_errors"] == []
    assert client.get("/api/pipelines/churn/page", headers=headers).status_code == 404
    assert client.get("/dag/churn_training", headers=headers).text.count("data-view='none'") == 1


def test_a_pipeline_is_listed_only_when_each_of_its_dags_is_readable(auth, specs, monkeypatch):
    denied: set[str] = {"churn_monitoring"}
    original = type(auth).is_authorized_dag

    def is_authorized_dag(self: Any, *, method: str, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if details is not None and details.id in denied:
            return False
        return bool(original(self, method=method, user=user, access_entity=access_entity, details=details))

    monkeypatch.setattr(type(auth), "is_authorized_dag", is_authorized_dag)
    client = _client()
    headers = {"Authorization": f"Bearer {_token(auth, 'admin')}"}
    assert [p.get("name") for p in client.get("/api/pipelines", headers=headers).json() if "error" not in p] == []
    denied.clear()
    assert [p.get("name") for p in client.get("/api/pipelines", headers=headers).json() if "error" not in p] == [
        "churn"
    ]


def test_champion_and_claims_errors_reach_the_page_without_credentials(specs, monkeypatch):
    from airflow_mlops.core.landing import recovery as claim_recovery
    from airflow_mlops.core.registry.client import Registry

    secret_uri = "http://alice:s3cr3t-pw@mlflow.internal:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret_uri)

    def champion(self: Registry, name: str) -> Any:
        raise ConnectionError(f"cannot reach {self.tracking_uri}/api/2.0 (token=abc123def456) for {name}")

    def stranded(lake: str) -> Any:
        raise PermissionError("AccessDenied for AKIAABCDEFGHIJKLMNOP: aws_secret_access_key=wJalrXUtnFEMIK7MDENG")

    monkeypatch.setattr(Registry, "champion", champion)
    monkeypatch.setattr(claim_recovery, "stranded", stranded)
    client = _client(require_user=False)
    (pipeline,) = [p for p in client.get("/api/pipelines").json() if "error" not in p]
    assert pipeline["champion_error"].startswith("ConnectionError: cannot reach http://***@mlflow.internal:5000")
    assert pipeline["claims"]["training"]["error"].startswith("PermissionError: AccessDenied")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cr3t-pw@127.0.0.1:9")  # the pages read over REST
    page = client.get("/api/overview").text
    assert "cannot be reached" in page and "127.0.0.1:9" in page
    for secret in ("s3cr3t-pw", "alice", "abc123def456", "AKIAABCDEFGHIJKLMNOP", "wJalrXUtnFEMIK7MDENG"):
        assert secret not in str(pipeline) and secret not in page, secret


def test_every_route_that_changes_state_is_csrf_safe_and_checks_edit_rights(auth, specs):
    """A cross-site form post with the UI's cookie cannot act: every non-GET route needs the
    X-Airflow-MLOps header and a JSON body; rollback needs edit rights on the training DAG."""
    from fastapi.routing import APIRoute

    from airflow_mlops.ui.auth import require_action_request
    from airflow_mlops.ui.web import create_app

    app = create_app()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.methods != {"GET"}:
            assert require_action_request in [d.call for d in route.dependant.dependencies], route.path
    client = _client()
    url = "/api/pipelines/churn/rollback"
    cookies = {"_token": _token(auth, "admin")}
    assert client.post(url, data={"to_version": "1"}, cookies=cookies).status_code == 403  # a form: no header
    viewer = {"_token": _token(auth, "viewer")}
    answer = client.post(url, json={"to_version": "1"}, headers={"X-Airflow-MLOps": "1"}, cookies=viewer)
    assert answer.status_code == 403 and "edit rights on churn_training" in answer.json()["detail"]
    assert client.post(url, json={"to_version": "1"}, headers={"X-Airflow-MLOps": "1"}).status_code == 401
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/api/pipelines", cookies=cookies).status_code == 405, method
