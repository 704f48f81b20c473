"""Schemathesis against a live server, over the whole document (/api/v1, the agents' API and
/oauth/*), with positive and negative data and every check schemathesis has (no 5xx; status
codes, content types, headers and bodies as documented; valid data accepted, invalid data
refused; authentication enforced). /api/v1 operations run with a token of the scope they need,
and the first request also with each other scope's token (their 403). Bounded: a few examples
per operation and mode, no shrinking."""
from __future__ import annotations

import base64
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from test_api import EVERYTHING, make_client, token_for
from test_api_edges import agent_secret

load_all_checks()
ALL_CHECKS = {name: CHECKS.get_one(name) for name in CHECKS.get_all_names()}
POSITIVE_DATA_ACCEPTANCE = ALL_CHECKS["positive_data_acceptance"]
BUDGET_SECONDS = 45


def positive_data_acceptance(ctx, response, case):
    """Schemathesis's check, but for what a schema cannot say: a stale If-Match is a 412 (the
    resource's state, as a 409 is); a body that looks valid may break a rule (a site of this
    organization, an IANA time zone, a free serial number) with a 422; free-form JSON objects
    (specs, metrics, output) take any JSON but the NUL character, which PostgreSQL cannot
    store (400, saying so). Query and path parameters must be accepted whenever they are valid."""
    if response.status_code == 412:
        return None
    if case.body is not None and case.method.upper() != "GET":
        if response.status_code == 422:
            return None
        if response.status_code == 400 and "NUL" in (response.json() or {}).get("detail", ""):
            return None
    return POSITIVE_DATA_ACCEPTANCE(ctx, response, case)


CHECKS_USED = [check for name, check in ALL_CHECKS.items() if name != "positive_data_acceptance"] + [
    positive_data_acceptance]


def _exercise(operation, live_server, headers, others, mode, examples, **fixed):
    """Every generated request is sent with `headers` (past authentication: the operation's
    own answers); the first also with each of `others` (another scope's token: 403)."""
    # The credential is fixed, not generated: negative data must be wrong in what the operation
    # reads, not in a credential that would be replaced before sending.
    strategy = operation.as_strategy(generation_mode=mode, headers=headers, **fixed)
    sent = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        for each in [headers] + ([] if sent else others):
            case.call_and_validate(base_url=live_server, headers=each, checks=CHECKS_USED, timeout=30)
        sent.append(case)

    run()


def test_every_check_of_schemathesis_is_used():
    assert {"negative_data_rejection", "positive_data_acceptance", "not_a_server_error",
            "response_schema_conformance", "ignored_auth"} <= set(ALL_CHECKS)
    assert len(CHECKS_USED) == len(ALL_CHECKS)


@pytest.mark.extended
@pytest.mark.filterwarnings("ignore")
def test_schemathesis_over_the_whole_document(app, live_server, world):
    schema = schemathesis.openapi.from_url(f"{live_server}/api/v1/openapi.json")
    # A body past a documented size limit (a gateway's batch of 1,001) is refused with 413.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    operations = [result.ok() for result in schema.get_all_operations()]
    # 30 of /api/v1 (12 of them integrations, 4 roles and members), 3 of the agents, 3 of /oauth
    assert len(operations) == 36
    a = world["a"]
    real = {"site_id": str(a["sites"][0]), "device_id": str(a["devices"][0]),
            "user_id": str(world["users"]["viewer"].id)}
    started = time.monotonic()
    with app.test_client() as http:
        tokens = {scope: {"Authorization": f"Bearer {token_for(app, http, a['id'], [scope])}"} for scope in EVERYTHING}
    agent = {"Authorization": f"Bearer {agent_secret(app, a['id'], a['devices'][1], gateway=True)}"}
    client_id, secret = make_client(app, a["id"], EVERYTHING, name="schemathesis")
    client_basic = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}
    for operation in operations:
        security = operation.definition.raw["security"]
        if operation.path.startswith("/oauth/"):
            headers, others = client_basic, []
        elif operation.path.startswith("/api/v1/agent/"):
            headers, others = agent, []
        else:
            needed = security[0]["oauth2"][0]
            headers, others = tokens[needed], [t for scope, t in tokens.items() if scope != needed]
        params = {k: v for k, v in real.items() if "{" + k + "}" in operation.path}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fixed = {"path_parameters": params} if params else {}
            label = f"{operation.method.upper()} {operation.path}"
            if label == "GET /api/v1/agent/tasks" and mode is GenerationMode.POSITIVE:
                fixed["query"] = {"wait": 0}  # a valid wait is a real wait: up to 25 s with no task queued
            if label in ("GET /api/v1/devices", "GET /api/v1/sites", "GET /api/v1/members",
                         "GET /api/v1/integrations/{integration_id}/log") \
                    and mode is GenerationMode.POSITIVE:
                fixed["query"] = {"cursor": ""}  # a cursor is opaque: a random one is refused, rightly
            raw = operation.definition.raw
            if mode is GenerationMode.NEGATIVE and not raw.get("parameters") and "requestBody" not in raw:
                continue  # nothing a request could get wrong (GET /api/v1/integrations)
            print(label, mode.value, flush=True)  # noqa: T201 - names the operation of a failure
            if not (params and mode is GenerationMode.NEGATIVE):  # with real ids fixed: nothing left to negate
                _exercise(operation, live_server, headers, others if mode is GenerationMode.POSITIVE else [], mode,
                          4, **fixed)
            if params:  # random ids too: the 404 answers must conform as well
                _exercise(operation, live_server, headers, [], mode, 2)
    assert time.monotonic() - started < BUDGET_SECONDS * 2  # a guard against runaway generation
