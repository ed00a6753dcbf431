"""Endpoint tests: answer checks, error kinds, percentiles, summaries and messages."""

from __future__ import annotations

import http.client
import socket
import ssl
from urllib.error import URLError

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _endpoint_test as et

PASSENGER = {"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0, "Fare": 7.25, "Embarked": "S"}
ANSWER = '{"prediction": 0, "probability": 0.0836, "model_version": "titanic-logreg-1"}'


@pytest.mark.parametrize(
    ("expected", "actual", "problems"),
    [
        ({"prediction": 0}, {"prediction": 0, "probability": 0.08}, []),
        ({"prediction": 0}, {"prediction": 0.0}, []),  # numbers by value
        ({"prediction": 1}, {"prediction": 0}, ["$.prediction is 0, expected 1"]),
        ({"prediction": 0}, {"probability": 0.1}, ["$.prediction is missing"]),
        ({"ok": True}, {"ok": 1}, ["$.ok is 1, expected true"]),  # a boolean is not a number
        ({"ok": 1}, {"ok": True}, ["$.ok is true, expected 1"]),
        ({"a": {"b": "x"}}, {"a": {"b": "x", "c": 1}}, []),
        ({"a": {"b": "x"}}, {"a": "x"}, ['$.a is "x", expected an object']),
        ({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2, "c": 3}]}, []),
        ({"a": [1, 2]}, {"a": [1]}, ["$.a has 1 elements, expected 2"]),
        ({"a": [1, 2]}, {"a": [1, 3]}, ["$.a[1] is 3, expected 2"]),
        ({"a": None}, {"a": None}, []),
        ({"a": None}, {"a": 0}, ["$.a is 0, expected null"]),
        ("ok", "ok", []),
        ({"status": "ok"}, ["ok"], ['$ is ["ok"], expected an object']),
        ({"x": 1, "y": 2}, {}, ["$.x is missing", "$.y is missing"]),
    ],
)
def test_json_subset(expected, actual, problems):
    assert et.json_subset_problems(expected, actual) == problems


@pytest.mark.parametrize(
    ("status", "text", "expect_json", "expect_regex", "kind", "problem"),
    [
        (200, ANSWER, {"prediction": 0}, None, None, None),
        (503, '{"status": "unhealthy"}', None, None, "status", "answered 503, expected 200 or 201"),
        (200, "<html>oops</html>", {"prediction": 0}, None, "body", "the answer is not JSON, expected JSON"),
        (200, ANSWER, {"prediction": 1}, None, "body", "does not match expect_json: $.prediction is 0, expected 1"),
        (200, ANSWER, None, r'"model_version": "titanic-', None, None),
        (200, ANSWER, None, r"^ok$", "body", "does not match expect_regex '^ok$'"),
        (200, "", None, None, None, None),
    ],
)
def test_check_answer(status, text, expect_json, expect_regex, kind, problem):
    got_kind, got_problem, _parsed = et.check_answer(status, text, [200, 201], expect_json, expect_regex)
    assert got_kind == kind
    if problem is None:
        assert got_problem is None
    else:
        assert problem in got_problem


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (URLError(ConnectionRefusedError(111, "Connection refused")), "connection_refused"),
        (URLError(TimeoutError("timed out")), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (TimeoutError("The read operation timed out"), "timeout"),
        (http.client.RemoteDisconnected("Remote end closed connection without response"), "connection_reset"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection_reset"),
        (URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")), "tls"),
        (URLError(socket.gaierror(-2, "Name or service not known")), "dns"),
        (http.client.BadStatusLine("HTTP/9 ???"), "protocol"),
        (URLError(OSError(113, "No route to host")), "connection_error"),
    ],
)
def test_classify_error(exc, kind):
    assert et.classify_error(exc) == kind


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 95, 3.85),
        (list(range(1, 11)), 50, 5.5),
        (list(range(1, 11)), 95, 9.55),
        (list(range(1, 11)), 99, 9.91),
        (list(range(1, 101)), 95, 95.05),
        ([10, 20], 0, 10),
        ([10, 20], 100, 20),
    ],
)
def test_percentile_interpolates_like_numpy(values, pct, expected):
    assert et.percentile(values, pct) == (pytest.approx(expected) if expected is not None else None)


def sample(ok=True, ms=10.0, kind=None, url="http://a/predict", problem=None):
    return {"url": url, "method": "POST", "ok": ok, "kind": kind, "elapsed_ms": ms, "problem": problem, "status": 200}


def test_summarize_counts_kinds_and_latency_of_successes():
    samples = [sample(ms=float(i)) for i in range(1, 19)]
    samples += [sample(False, 5000.0, "timeout", problem="no answer: timeout (timed out)")]
    samples += [sample(False, 3.0, "status", url="http://b/predict", problem="answered 500, expected 200")]
    summary = et.summarize(samples, seconds=0.5, concurrency=4)
    assert summary["requests"] == 20
    assert summary["succeeded"] == 18
    assert summary["failures"] == 2
    assert summary["failure_rate"] == 0.1
    assert summary["errors"] == {"timeout": 1, "status": 1}
    assert summary["error_examples"]["status"] == "POST http://b/predict: answered 500, expected 200"
    assert summary["latency_ms"] == {"min": 1.0, "mean": 9.5, "p50": 9.5, "p95": 17.15, "p99": 17.83, "max": 18.0}
    assert summary["requests_per_second"] == 40.0
    assert summary["duration_s"] == 0.5


def test_summarize_when_everything_failed():
    summary = et.summarize([sample(False, None, "connection_refused")] * 3, seconds=0.01, concurrency=1)
    assert summary["latency_ms"]["p95"] is None
    assert summary["failure_rate"] == 1.0


@pytest.mark.parametrize(
    ("failures", "p95", "max_rate", "max_p95", "messages"),
    [
        (0, 8.0, 0.0, None, []),
        (1, 8.0, 0.0, None, ["1 of 100 requests failed (1.0%, over max_failure_rate 0.0%): timeout 1"]),
        (1, 8.0, 0.01, None, []),
        (2, 8.0, 0.01, None, ["2 of 100 requests failed (2.0%, over max_failure_rate 1.0%): timeout 2"]),
        (0, 250.5, 0.0, 250, ["p95 latency 250.5 ms is over max_p95_ms 250"]),
        (0, 250.0, 0.0, 250, []),
    ],
)
def test_thresholds(failures, p95, max_rate, max_p95, messages):
    summary = {
        "requests": 100,
        "failures": failures,
        "failure_rate": failures / 100,
        "errors": {"timeout": failures} if failures else {},
        "latency_ms": {"p95": p95},
    }
    assert et.threshold_problems(summary, max_rate, max_p95) == messages


def test_build_request_json_body_defaults_to_post():
    request = et.build_request({"url": ["http://a/predict"], "body": PASSENGER, "timeout": 5})
    assert request["method"] == "POST"
    assert request["headers"] == {"Content-Type": "application/json"}
    assert (
        request["data"]
        == b'{"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0, "Fare": 7.25, "Embarked": "S"}'
    )
    assert request["status_code"] == [200]


def test_build_request_raw_and_explicit_headers():
    request = et.build_request(
        {
            "url": ["https://a/x"],
            "method": "put",
            "body": "a=1",
            "body_format": "raw",
            "headers": {"content-type": "text/plain", "X-N": 3},
        }
    )
    assert request["method"] == "PUT"
    assert request["data"] == b"a=1"
    assert request["headers"] == {"content-type": "text/plain", "X-N": "3"}
    assert et.build_request({"url": ["http://a/health"]})["method"] == "GET"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": ["ftp://a/x"]}, "url 'ftp://a/x' is not an http:// or https:// URL"),
        ({"url": ["a/x"]}, "is not an http"),
        ({"url": ["http://a"], "expect_regex": "("}, "expect_regex '\\(' is not a valid regular expression"),
        ({"url": ["http://a"], "timeout": 0}, "timeout must be more than 0"),
    ],
)
def test_build_request_bad_input(params, message):
    with pytest.raises(et.EndpointError, match=message):
        et.build_request(params)


STRESS = {"requests": 10, "concurrency": 2, "timeout": None, "max_failure_rate": 0.0, "max_p95_ms": None}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(STRESS, requests=0), "stress.requests must be at least 1"),
        (dict(STRESS, concurrency=0), "stress.concurrency must be at least 1"),
        (dict(STRESS, max_failure_rate=5), "stress.max_failure_rate is a fraction between 0 and 1"),
        (dict(STRESS, max_p95_ms=0), "stress.max_p95_ms must be more than 0"),
    ],
)
def test_stress_options_checked_before_sending(options, message):
    sent = []

    def sender(*args):
        sent.append(args)
        return 200, ANSWER, 0.001

    with pytest.raises(et.EndpointError, match=message):
        et.run({"url": ["http://a/predict"], "stress": options}, sender)
    assert sent == []


def replay(answers):
    """A sender answering per URL from a table: (status, text) or an exception."""

    def sender(url, method, data, headers, timeout):
        answer = answers[url]
        if isinstance(answer, BaseException):
            raise answer
        return answer[0], answer[1], 0.004

    return sender


def test_functional_failure_message_names_url_answer_and_expectation():
    passed, message, out = et.run(
        {"url": ["http://a/predict", "http://b/predict", "http://c/predict"], "body": PASSENGER,
         "expect_json": {"prediction": 0}},
        replay(
            {
                "http://a/predict": (200, ANSWER),
                "http://b/predict": (500, '{"error": "model not loaded"}'),
                "http://c/predict": URLError(ConnectionRefusedError(111, "Connection refused")),
            }
        ),
    )  # fmt: skip
    assert passed is False
    assert message.startswith("functional test failed for 2 of 3 URL(s): ")
    assert 'POST http://b/predict: answered 500, expected 200; answer: {"error": "model not loaded"}' in message
    assert "POST http://c/predict: no answer: connection refused" in message
    assert message.endswith('(expected status 200 with JSON containing {"prediction": 0})')
    assert [r["ok"] for r in out["results"]] == [True, False, False]
    assert out["results"][0]["json"]["prediction"] == 0
    assert out["stress"] is None


def test_stress_runs_after_a_passing_functional_test_round_robin():
    seen = []

    def sender(url, *args):
        seen.append(url)
        return 200, ANSWER, 0.002

    passed, message, out = et.run(
        {"url": ["http://a/p", "http://b/p"], "body": PASSENGER, "expect_json": {"prediction": 0}, "stress": STRESS},
        sender,
    )
    assert passed, message
    assert out["stress"]["requests"] == 10
    assert out["stress"]["passed"] is True
    assert seen.count("http://a/p") == 6  # 1 functional + 5 stress
    assert seen.count("http://b/p") == 6
    assert "stress test passed: 10 requests at concurrency 2" in message
    assert "p95 2.0 ms" in message


def test_stress_failure_message():
    calls = []

    def sender(url, *args):
        calls.append(url)
        if len(calls) > 1 and len(calls) % 4 == 0:
            raise URLError(TimeoutError("timed out"))
        return 200, ANSWER, 0.002

    passed, message, out = et.run(
        {"url": ["http://a/p"], "stress": dict(STRESS, requests=12, concurrency=1, max_failure_rate=0.1)}, sender
    )
    assert passed is False
    assert message.startswith(
        "stress test failed: 3 of 12 requests failed (25.0%, over max_failure_rate 10.0%): timeout 3."
    )
    assert "First errors: GET http://a/p: no answer: timeout" in message
    assert out["stress"]["errors"] == {"timeout": 3}
    assert out["stress"]["passed"] is False
