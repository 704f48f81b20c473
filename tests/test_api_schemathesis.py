"""Schemathesis against a live server: for a token of each scope, every operation of
/api/v1/openapi.json gets generated requests, and no response is a 5xx or strays from the
document (status codes, content types, headers, bodies). Bounded: a few examples per
operation for the scope it needs, one for the others (their 403), no shrinking."""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api import EVERYTHING, token_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
BUDGET_SECONDS = 20


def _exercise(operation, live_server, token, others, path_parameters, examples):
    """Every generated request is sent with the token holding the operation's scope (past the
    check: the operation's own answers); the first also with each other scope's token (403).
    All must conform."""
    strategy = operation.as_strategy(path_parameters=path_parameters) if path_parameters else operation.as_strategy()
    sent = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        for each in [token] + ([] if sent else others):
            case.call_and_validate(base_url=live_server, headers={"Authorization": f"Bearer {each}"}, checks=CHECKS)
        sent.append(case)

    run()


@pytest.mark.filterwarnings("ignore")
def test_schemathesis_for_a_token_of_each_scope(app, live_server, world):
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14
    a = world["a"]
    real = {"site_id": str(a["sites"][0]), "device_id": str(a["devices"][0])}
    started = time.monotonic()
    with app.test_client() as http:
        tokens = {scope: token_for(app, http, a["id"], [scope]) for scope in EVERYTHING}
    for operation in operations:
        needed = operation.definition.raw["security"][0]["oauth2"][0]
        params = {k: v for k, v in real.items() if "{" + k + "}" in operation.path}
        others = [t for scope, t in tokens.items() if scope != needed]
        _exercise(operation, live_server, tokens[needed], others, params, 4)
        if params:  # random ids too: the 404 answers must conform as well
            _exercise(operation, live_server, tokens[needed], [], None, 2)
    assert time.monotonic() - started < BUDGET_SECONDS * 2  # a guard against runaway generation
