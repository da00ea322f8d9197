"""The operations simulator, in-process on an ephemeral loopback port, with an injected clock.

Deterministic: the clock only moves when a test moves it, slow faults record their sleep instead of
sleeping, and probabilistic faults use a seeded RNG.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from opwatch_local.audit_log import AuditOptions
from opwatch_local.simulator import (
    MAX_SLOW_SECONDS,
    Busy,
    Fault,
    FaultKind,
    OperationSpec,
    Simulator,
    SimulatorClient,
    SimulatorError,
    SimulatorServer,
)

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def server(clock: FakeClock, slept: list[float]) -> Iterator[SimulatorServer]:
    with SimulatorServer(0, clock=clock, sleep=slept.append) as srv:
        yield srv


@pytest.fixture
def client(server: SimulatorServer) -> SimulatorClient:
    return SimulatorClient(server.url, timeout=5)


def raw_get(
    server: SimulatorServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# --- lifecycle -----------------------------------------------------------------------------------


def test_operation_runs_then_finishes_with_response(
    client: SimulatorClient, clock: FakeClock
) -> None:
    name = client.create_operation(
        "projects/p/locations/l/operations/op-1",
        duration=30,
        response={"@type": "type.googleapis.com/x.v1.Thing", "id": "42"},
        verb="deploy",
        target="projects/p/locations/l/things/42",
    )
    assert name == "projects/p/locations/l/operations/op-1"

    status, running = client.get_operation(name)
    assert status == 200
    assert running["name"] == name
    assert running["done"] is False
    assert "response" not in running and "error" not in running
    meta = running["metadata"]
    assert meta["createTime"] == "2027-01-15T08:00:00.000Z"
    assert meta["verb"] == "deploy"
    assert meta["target"] == "projects/p/locations/l/things/42"
    assert meta["apiVersion"] == "v1"
    assert "endTime" not in meta

    clock.advance(29.9)
    assert client.get_operation(name)[1]["done"] is False

    clock.advance(0.1)
    status, done = client.get_operation(name)
    assert status == 200
    assert done["done"] is True
    assert done["response"] == {"@type": "type.googleapis.com/x.v1.Thing", "id": "42"}
    assert done["metadata"]["endTime"] == "2027-01-15T08:00:30.000Z"


def test_operation_finishes_with_error_as_given(client: SimulatorClient, clock: FakeClock) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA"}]
    name = client.create_operation(
        duration=5, error={"code": 8, "message": "out of quota", "details": details}
    )
    clock.advance(5)
    status, body = client.get_operation(name)
    assert status == 200  # the GET succeeds; the operation carries the error
    assert body["done"] is True
    assert body["error"] == {"code": 8, "message": "out of quota", "details": details}
    assert "response" not in body


def test_zero_duration_is_done_at_once_with_default_response(client: SimulatorClient) -> None:
    name = client.create_operation()
    body = client.get_operation(name)[1]
    assert body["done"] is True
    assert body["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}


def test_auto_names_are_unique_and_under_the_parent(client: SimulatorClient) -> None:
    a, b = client.create_operation(duration=1), client.create_operation(duration=1)
    assert a != b
    assert a.startswith("projects/opwatch-local/locations/us-central1/operations/")


def test_any_api_version_and_query_string_are_accepted(client: SimulatorClient) -> None:
    name = client.create_operation(duration=1)
    assert client.get_operation(name, version="v1beta")[0] == 200
    assert client.get_operation(name + "?alt=json")[0] == 200


# --- not found -----------------------------------------------------------------------------------


def test_unknown_name_answers_google_not_found_shape(client: SimulatorClient) -> None:
    status, body = client.get_operation("projects/p/locations/l/operations/nope")
    assert status == 404
    assert body == {
        "error": {
            "code": 404,
            "message": "Operation projects/p/locations/l/operations/nope not found.",
            "status": "NOT_FOUND",
        }
    }


def test_appear_after_answers_404_until_then(client: SimulatorClient, clock: FakeClock) -> None:
    name = client.create_operation(duration=10, appear_after=3)
    assert client.get_operation(name)[0] == 404
    clock.advance(2.999)
    assert client.get_operation(name)[0] == 404
    clock.advance(0.001)
    status, body = client.get_operation(name)
    assert status == 200 and body["done"] is False
    assert client.stats(name).statuses == (404, 404, 200)


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "grpc_status"),
    [("500", 500, "INTERNAL"), ("503", 503, "UNAVAILABLE")],
)
def test_server_error_faults(
    client: SimulatorClient, server: SimulatorServer, kind: str, status: int, grpc_status: str
) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=[kind])
    code, _, body = raw_get(server, f"/v1/{name}")
    assert code == status
    assert body["error"]["code"] == status  # type: ignore[index]
    assert body["error"]["status"] == grpc_status  # type: ignore[index]
    # The script is used up: the next GET gets the operation.
    assert client.get_operation(name)[0] == 200


@pytest.mark.parametrize(
    ("busy", "phrase"),
    [
        (Busy.QUEUE, "Unable to queue the operation"),
        (Busy.UNREADY, "parent resource not in ready state"),
    ],
)
def test_a_busy_operation_answers_409_for_a_while(
    client: SimulatorClient, server: SimulatorServer, clock: FakeClock, busy: Busy, phrase: str
) -> None:
    """The two 409s the google provider retries on cloudaicompanion's operation GET
    (google/services/gemini/gemini_operation.go; phrases from
    google/transport/error_retry_predicates.go)."""
    name = client.create_operation(duration=60, busy_for=30, busy=busy)
    code, _, body = raw_get(server, f"/v1/{name}")
    assert code == 409
    assert body["error"]["status"] == "ABORTED"  # type: ignore[index]
    assert phrase in body["error"]["message"]  # type: ignore[index]
    clock.advance(30)
    assert client.get_operation(name)[0] == 200
    assert client.stats(name).statuses == (409, 200)


def test_busy_knobs_are_checked(client: SimulatorClient) -> None:
    with pytest.raises(SimulatorError, match="busy must be one of"):
        client.create_operation(busy="tired")
    with pytest.raises(SimulatorError, match="negative"):
        client.create_operation(busy_for=-1)


def test_429_with_retry_after_header(client: SimulatorClient, server: SimulatorServer) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=[{"kind": "429-retry-after", "retry_after": 2.5}])
    code, headers, body = raw_get(server, f"/v1/{name}")
    assert code == 429
    assert headers["Retry-After"] == "3"  # whole seconds, rounded up: never early
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"  # type: ignore[index]


def test_429_with_retry_info_detail(client: SimulatorClient, server: SimulatorServer) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(
        name,
        script=[
            Fault(FaultKind.RETRY_INFO, retry_after=2),
            Fault(FaultKind.RETRY_INFO, retry_after=1.5),
        ],
    )
    for delay in ("2s", "1.5s"):
        code, headers, body = raw_get(server, f"/v1/{name}")
        assert code == 429
        assert "Retry-After" not in headers
        assert body["error"]["details"] == [  # type: ignore[index]
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
        ]


def test_slow_fault_sleeps_then_answers_normally(
    client: SimulatorClient, slept: list[float]
) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=[{"kind": "slow", "seconds": 4}])
    status, body = client.get_operation(name)
    assert (status, body["done"]) == (200, True)
    assert slept == [4.0]
    assert client.stats(name).statuses == (200,)


def test_slow_fault_is_bounded(client: SimulatorClient) -> None:
    with pytest.raises(SimulatorError, match="seconds"):
        client.set_faults(
            "x/operations/y", script=[{"kind": "slow", "seconds": MAX_SLOW_SECONDS + 1}]
        )


def test_reset_fault_resets_the_connection(
    client: SimulatorClient, server: SimulatorServer
) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=["reset"])
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        raw_get(server, f"/v1/{name}")
    assert client.stats(name).statuses == (0,)
    assert client.get_operation(name)[0] == 200


def test_script_ok_entries_let_a_get_through(client: SimulatorClient) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=["503", "ok", "500"])
    assert [client.get_operation(name)[0] for _ in range(4)] == [503, 200, 500, 200]


def test_faults_apply_before_an_operation_exists(client: SimulatorClient) -> None:
    client.set_faults("projects/p/locations/l/operations/later", script=["503"])
    assert client.get_operation("projects/p/locations/l/operations/later")[0] == 503


def test_probabilistic_faults_repeat_with_the_same_seed(client: SimulatorClient) -> None:
    def run() -> list[int]:
        client.reset()
        name = client.create_operation("projects/p/locations/l/operations/flaky", duration=0)
        client.set_faults(name, probability=0.5, fault="503", seed=7)
        return [client.get_operation(name)[0] for _ in range(20)]

    first = run()
    assert first == run()
    assert set(first) == {200, 503}


def test_script_runs_before_probability(client: SimulatorClient) -> None:
    name = client.create_operation(duration=0)
    client.set_faults(name, script=["500"], probability=1.0, fault="503")
    assert [client.get_operation(name)[0] for _ in range(3)] == [500, 503, 503]


@pytest.mark.parametrize(
    "bad",
    [
        {"script": ["418"]},
        {"probability": 1.5, "fault": "503"},
        {"probability": 0.5},
        {"script": [{"kind": "429-retry-after", "retry_after": -1}]},
    ],
)
def test_bad_fault_specs_are_refused(client: SimulatorClient, bad: dict[str, object]) -> None:
    with pytest.raises(SimulatorError, match="HTTP 400"):
        client.set_faults("x/operations/y", **bad)  # type: ignore[arg-type]


# --- counting and recording ----------------------------------------------------------------------


def test_gets_are_counted_with_times_and_gaps(client: SimulatorClient, clock: FakeClock) -> None:
    name = client.create_operation(duration=100)
    other = client.create_operation(duration=100)
    client.set_faults(name, script=["503"])
    for step in (0, 1.5, 4):
        clock.advance(step)
        client.get_operation(name)
    client.get_operation(other)

    stats = client.stats(name)
    assert stats.gets == 3
    assert stats.times == (T0, T0 + 1.5, T0 + 5.5)
    assert stats.gaps == (1.5, 4.0)
    assert stats.statuses == (503, 200, 200)
    assert client.stats(other).gets == 1
    assert client.stats("never/polled").gets == 0


def test_authorization_presence_is_recorded_not_its_value(
    client: SimulatorClient, server: SimulatorServer
) -> None:
    name = client.create_operation(duration=0)
    client.get_operation(name)
    client.get_operation(name, headers={"Authorization": "Bearer secret-token"})
    assert client.stats(name).authorization == (False, True)
    records = client.requests()
    assert [r["authorization"] for r in records] == [False, True]
    assert "secret-token" not in json.dumps(records)


def test_reset_forgets_everything(client: SimulatorClient) -> None:
    name = client.create_operation("projects/p/locations/l/operations/a", duration=0)
    client.set_faults(name, script=["503"])
    client.get_operation(name)
    client.reset()
    assert client.requests() == []
    assert client.get_operation(name)[0] == 404  # no operation and no fault any more
    assert client.create_operation(name) == name  # the name is free again


# --- control API errors and server ---------------------------------------------------------------


def test_invalid_create_requests_are_refused(client: SimulatorClient) -> None:
    client.create_operation("projects/p/locations/l/operations/dup")
    with pytest.raises(SimulatorError, match="already exists"):
        client.create_operation("projects/p/locations/l/operations/dup")
    with pytest.raises(SimulatorError, match="negative"):
        client.create_operation(duration=-1)
    with pytest.raises(SimulatorError, match="code"):
        client.create_operation(error={"message": "no code"})


def test_unknown_control_route_is_404(server: SimulatorServer) -> None:
    code, _, body = raw_get(server, "/_sim/nothing")
    assert code == 404
    assert body["error"]["status"] == "NOT_FOUND"  # type: ignore[index]


def test_health(client: SimulatorClient) -> None:
    assert client.health() is True
    assert SimulatorClient("http://127.0.0.1:9", timeout=1).health() is False


def test_server_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimulatorServer(0, host="0.0.0.0")
    with SimulatorServer(0) as srv:
        assert srv.url.startswith("http://127.0.0.1:")


def test_taken_port_names_the_port(server: SimulatorServer) -> None:
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        SimulatorServer(server.port).start()


def test_simulator_core_without_http(clock: FakeClock) -> None:
    """The decision is a pure function of state and clock: usable without sockets."""
    sim = Simulator(clock=clock)
    name = sim.create_operation(duration=1)["name"]
    assert sim.handle_get(f"/v1/{name}").body["done"] is False
    clock.advance(1)
    assert sim.handle_get(f"/v1/{name}", authorization=True).body["done"] is True
    assert sim.stats(name).authorization == (False, True)


# --- the operation spec --------------------------------------------------------------------------


def test_a_spec_crosses_the_control_api_unchanged() -> None:
    """The client writes the body the server reads: one declaration of the fields for both."""
    spec = OperationSpec(
        "projects/p/locations/l/operations/op-1",
        duration=30.0,
        error={"code": 8, "message": "out of quota"},
        appear_after=2.0,
        target="projects/p/locations/l/things/42",
        verb="deploy",
        metadata={"extra": 1},
        audit={"latency": 1.0},
        busy_for=5.0,
        busy=Busy.UNREADY,
    )
    assert OperationSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert OperationSpec().to_json() == {
        "duration": 0.0,
        "appear_after": 0.0,
        "verb": "create",
        "api_version": "v1",
        "busy_for": 0.0,
        "busy": "unable-to-queue",
    }


def test_a_spec_body_with_unknown_fields_or_bad_times_is_refused() -> None:
    with pytest.raises(SimulatorError, match="unknown fields"):
        OperationSpec.from_json({"duraton": 5})
    with pytest.raises(ValueError):
        OperationSpec.from_json({"duration": "soon"})


def test_checking_a_spec_puts_each_field_in_its_one_form() -> None:
    checked = OperationSpec(
        busy="parent-not-ready",
        audit={"latency": 2},
        error={"code": 3, "message": "bad", "details": [], "extra": True},
    ).checked()
    assert checked.busy is Busy.UNREADY
    assert checked.audit == AuditOptions(latency=2.0)
    assert checked.error == {"code": 3, "message": "bad"}
    with pytest.raises(SimulatorError, match="invalid audit options"):
        OperationSpec(audit={"loss": 5}).checked()


def test_the_keyword_form_and_the_spec_form_create_the_same_operation(clock: FakeClock) -> None:
    by_keywords, by_spec = Simulator(clock=clock), Simulator(clock=clock)
    made = by_keywords.create_operation("a/operations/b", duration=5, verb="deploy")
    assert made == by_spec.create(OperationSpec("a/operations/b", duration=5, verb="deploy"))


# --- operations.list -----------------------------------------------------------------------------
# Gemini for Google Cloud's REST reference, projects.locations.operations.list:
# GET /v1/{name=projects/*/locations/*}/operations with filter, pageSize, pageToken; the answer
# {"operations": [...], "nextPageToken": ...}; returnPartialSuccess "not by default supported and
# will result in an UNIMPLEMENTED error if set"
# (https://cloud.google.com/gemini/docs/api/reference/rest/v1/projects.locations.operations/list,
# and ListOperationsRequest in google/longrunning/operations.proto). Paging as AIP-158
# (https://google.aip.dev/158): fewer than pageSize may come back, a missing token ends the list,
# every other parameter must match the call that gave the token. Filters as AIP-160
# (https://google.aip.dev/160): `done = false`.

PARENT = "projects/p/locations/us-central1"


def list_all(client: SimulatorClient, parent: str = PARENT, **kwargs: Any) -> list[list[str]]:
    """Every page's operation names, following nextPageToken to the end."""
    pages, token = [], None
    for _ in range(1000):  # bounded: a token that never runs out fails instead of hanging
        status, body = client.list_operations(parent, page_token=token, **kwargs)
        assert status == 200, body
        pages.append([op["name"] for op in body.get("operations", [])])
        token = body.get("nextPageToken")
        if not token:
            return pages
    pytest.fail("operations.list still had a nextPageToken after 1000 pages")


def test_list_pages_through_the_parents_operations_in_creation_order(
    client: SimulatorClient,
) -> None:
    mine = [client.create_operation(f"{PARENT}/operations/op-{i}") for i in range(5)]
    client.create_operation("projects/p/locations/europe-west1/operations/elsewhere")
    client.create_operation(f"{PARENT}/operations/later", appear_after=60)  # not visible yet

    assert list_all(client, page_size=2) == [mine[:2], mine[2:4], mine[4:]]
    assert list_all(client) == [mine]
    assert client.stats(mine[0]).gets == 0, "a list is not a GET of each operation"
    assert [(r["page_size"], r["returned"]) for r in client.lists()[:3]] == [
        (2, 2),
        (2, 2),
        (2, 1),
    ]


def test_list_with_done_false_leaves_out_the_finished_ones(
    client: SimulatorClient, clock: FakeClock
) -> None:
    finished = client.create_operation(f"{PARENT}/operations/finished", duration=0)
    soon = client.create_operation(f"{PARENT}/operations/soon", duration=30)
    late = client.create_operation(f"{PARENT}/operations/late", duration=3600)

    assert list_all(client, filter="done=false") == [[soon, late]]
    assert list_all(client, filter="done = true") == [[finished]]
    clock.advance(30)
    assert list_all(client, filter="done=false", page_size=1) == [[late]]


def test_an_empty_list_is_an_empty_object(client: SimulatorClient) -> None:
    assert client.list_operations(PARENT) == (200, {})


def test_the_default_page_size_and_the_maximum(client: SimulatorClient) -> None:
    names = [client.create_operation(f"{PARENT}/operations/op-{i:03d}") for i in range(51)]
    assert list_all(client) == [names[:50], names[50:]]
    assert list_all(client, page_size=5000) == [names]  # coerced to 1000, not refused


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("pageSize=-1", 400, "negative"),
        ("pageSize=many", 400, "pageSize"),
        ("filter=name%3Dop-1", 400, "unsupported filter"),
        ("pageToken=garbage", 400, "invalid pageToken"),
        ("returnPartialSuccess=true", 501, "UNIMPLEMENTED"),
    ],
)
def test_list_refuses_what_the_reference_does_not_allow(
    server: SimulatorServer, client: SimulatorClient, query: str, status: int, says: str
) -> None:
    client.create_operation(f"{PARENT}/operations/op-1")
    code, _, body = raw_get(server, f"/v1/{PARENT}/operations?{query}")
    assert code == status
    assert says in json.dumps(body)


def test_a_page_token_only_continues_the_call_that_gave_it(client: SimulatorClient) -> None:
    for i in range(3):
        client.create_operation(f"{PARENT}/operations/op-{i}")
    _, first = client.list_operations(PARENT, page_size=1)
    token = first["nextPageToken"]
    assert client.list_operations(PARENT, page_size=1, page_token=token)[0] == 200
    assert client.list_operations(PARENT, filter="done=false", page_token=token)[0] == 400
    client.reset()
    assert client.list_operations(PARENT, page_token=token)[0] == 400


def test_an_api_without_list_filters_refuses_done_false(clock: FakeClock) -> None:
    """For APIs that take no filter the sweep lists everything (issue 18, section 3)."""
    simulator = Simulator(clock=clock, list_filters=False)
    simulator.create_operation(f"{PARENT}/operations/op-1")
    assert simulator.handle_list(f"/v1/{PARENT}/operations?filter=done%3Dfalse").status == 400
    reply = simulator.handle_list(f"/v1/{PARENT}/operations")
    assert [op["name"] for op in reply.body["operations"]] == [f"{PARENT}/operations/op-1"]
