"""Production refuses unsafe settings; the serving connection must not bypass RLS."""
from __future__ import annotations

import pytest

from conftest import TEST_MASTER_KEY, make_app
from portal import create_app
from portal.config import ConfigError


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("PORTAL_ENV", "SECRET_KEY", "DATABASE_URL", "MIGRATION_DATABASE_URL", "ALLOW_RLS_BYPASS", "BASE_URL",
                 "PORTAL_MASTER_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_production_is_the_default_and_needs_a_secret_key(clean_env):
    with pytest.raises(ConfigError, match="SECRET_KEY must be set in production"):
        create_app()


def test_production_refuses_the_embedded_database(clean_env):
    clean_env.setenv("SECRET_KEY", "s" * 64)
    with pytest.raises(ConfigError, match="DATABASE_URL must be set in production"):
        create_app()


def test_production_refuses_the_rls_bypass_setting(clean_env, db_urls):
    clean_env.setenv("SECRET_KEY", "s" * 64)
    clean_env.setenv("DATABASE_URL", db_urls["app"])
    clean_env.setenv("BASE_URL", "https://portal.example.com")
    clean_env.setenv("ALLOW_RLS_BYPASS", "1")
    with pytest.raises(ConfigError, match="ALLOW_RLS_BYPASS is a development setting"):
        create_app()


def test_production_serves_through_the_serving_role(clean_env, app, db_urls):
    clean_env.setenv("SECRET_KEY", "s" * 64)
    clean_env.setenv("DATABASE_URL", db_urls["app"].replace("postgresql+psycopg://", "postgresql://"))
    with pytest.raises(ConfigError, match="BASE_URL must be set in production"):
        create_app()
    clean_env.setenv("BASE_URL", "https://portal.example.com/")
    with pytest.raises(ConfigError, match="PORTAL_MASTER_KEYS must be set in production"):
        create_app()  # never a generated master key: the data keys would die with the instance folder
    clean_env.setenv("PORTAL_MASTER_KEYS", TEST_MASTER_KEY)
    prod = create_app()
    assert prod.config["BASE_URL"] == "https://portal.example.com"
    assert prod.config["PORTAL_ENV"] == "production" and prod.config["SESSION_COOKIE_SECURE"] is True
    assert prod.test_client().get("/healthz").status_code == 200
    assert not prod.debug


@pytest.mark.parametrize("env, expected", [
    ({}, "http://127.0.0.1:5000"),
    ({"PORT": "8080"}, "http://127.0.0.1:8080"),
    ({"HOST": "0.0.0.0", "PORT": "8080"}, "http://localhost:8080"),
    ({"HOST": "::1"}, "http://[::1]:5000"),
    ({"BASE_URL": "https://dev.example.com/"}, "https://dev.example.com"),
])
def test_development_base_url_defaults_to_where_make_run_serves(clean_env, env, expected):
    """Emailed links are built from BASE_URL only: unset in development, it is `make run`'s address."""
    from portal.config import load
    for name in ("HOST", "PORT"):
        clean_env.delenv(name, raising=False)
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert load({"PORTAL_ENV": "development", "SECRET_KEY": "s" * 64})["BASE_URL"] == expected


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_refuses_to_serve_as_owner_or_superuser(app, db_urls, who):
    with pytest.raises(ConfigError, match="would bypass row-level security"):
        make_app(db_urls, DATABASE_URL=db_urls[who])


def test_development_opt_out_allows_it_with_a_warning(app, db_urls, caplog):
    bypassing = make_app(db_urls, DATABASE_URL=db_urls["owner"], ALLOW_RLS_BYPASS=True)
    assert bypassing.config["ALLOW_RLS_BYPASS"] is True
    assert "Row-level security is bypassed" in caplog.text


def test_seed_is_refused_in_production(app, db_urls):
    prod = make_app(db_urls, PORTAL_ENV="production", BASE_URL="https://portal.example.com")
    result = prod.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code != 0 and "Refusing to load sample data in production" in result.output


def test_seed_is_idempotent(app):
    result = app.test_cli_runner().invoke(args=["seed"])
    assert result.exit_code == 0 and "already present" in result.output
