# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Functional and short stress tests of HTTP endpoints (a deployed model API).

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``endpoint_test``.

The checks (status, JSON subset, regex), the error kinds, the percentiles and the
summaries are plain functions of plain values. The sender made by ``make_sender``
is the one function that does HTTP; the runners take it as an argument.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import ssl
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.error import HTTPError, URLError

BODY_SHOWN = 500  # characters of an answer quoted in a message
BODY_KEPT = 4000  # characters of an answer returned per URL
USER_AGENT = "mlops.deploy-endpoint_test"


class EndpointError(Exception):
    """Bad input: the message says what to fix."""


# ------------------------------------------------------------------- checks


def json_subset_problems(expected, actual, path: str = "$") -> list[str]:
    """Where ``actual`` does not contain ``expected``.

    Objects: every expected key must be there, recursively (more keys are fine).
    Lists: same length, each element matching. Scalars: equal (1 == 1.0, but a
    boolean is not a number).
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return ["%s is %s, expected an object" % (path, _short(actual))]
        problems = []
        for key in expected:
            if key not in actual:
                problems.append("%s.%s is missing" % (path, key))
            else:
                problems.extend(json_subset_problems(expected[key], actual[key], "%s.%s" % (path, key)))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return ["%s is %s, expected a list" % (path, _short(actual))]
        if len(actual) != len(expected):
            return ["%s has %d elements, expected %d" % (path, len(actual), len(expected))]
        problems = []
        for index, (want, got) in enumerate(zip(expected, actual)):
            problems.extend(json_subset_problems(want, got, "%s[%d]" % (path, index)))
        return problems
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        same = expected is actual or (type(expected) is type(actual) and expected == actual)
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        same = expected == actual
    else:
        same = type(expected) is type(actual) and expected == actual
    return [] if same else ["%s is %s, expected %s" % (path, _short(actual), _short(expected))]


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def check_answer(status: int, text: str, expected_status, expect_json=None, expect_regex=None):
    """(kind, problem, parsed JSON) of an answer; kind/problem are None when it is as expected."""
    parsed = None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if status not in expected_status:
        return "status", "answered %d, expected %s" % (status, " or ".join(str(s) for s in expected_status)), parsed
    if expect_json is not None:
        if parsed is None and text.strip() != "null":
            return "body", "the answer is not JSON, expected JSON containing %s" % _short(expect_json), parsed
        problems = json_subset_problems(expect_json, parsed)
        if problems:
            return "body", "the answer does not match expect_json: %s" % "; ".join(problems[:5]), parsed
    if expect_regex is not None and not re.search(expect_regex, text):
        return "body", "the answer does not match expect_regex %r" % expect_regex, parsed
    return None, None, parsed


def classify_error(exc: BaseException) -> str:
    """The kind of a request that got no HTTP answer."""
    reason = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(reason, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return "connection_reset"
    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
        return "tls"
    if isinstance(reason, socket.gaierror):
        return "dns"
    if isinstance(reason, http.client.HTTPException):
        return "protocol"
    return "connection_error"


# ------------------------------------------------------------------ requests


def make_sender(validate_certs: bool = True):
    """A function that sends one request: (status, body text, seconds). HTTP error
    statuses are answers too; anything that prevents an answer raises.

    One opener and one TLS context serve every request of a run (building them per
    request, as ansible.module_utils.urls.open_url does, costs ~25 ms each and would
    be measured as latency). Proxies come from the usual environment variables.
    """
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def send(url: str, method: str, data: bytes | None, headers: dict, timeout: float):
        request = urllib.request.Request(url, data=data, headers={"User-Agent": USER_AGENT, **headers})
        request.method = method
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except HTTPError as exc:
            status, body = exc.code, exc.read() or b""
        return status, body.decode("utf-8", errors="replace"), time.perf_counter() - started

    return send


def probe(request: dict, url: str, sender) -> dict:
    """Send ``request`` to ``url`` and check the answer: a sample dict."""
    sample = {"url": url, "method": request["method"], "status": None, "elapsed_ms": None}
    try:
        status, text, seconds = sender(url, request["method"], request["data"], request["headers"], request["timeout"])
    except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
        kind = classify_error(exc)
        return dict(sample, ok=False, kind=kind, problem="no answer: %s (%s)" % (kind.replace("_", " "), exc))
    kind, problem, parsed = check_answer(
        status, text, request["status_code"], request["expect_json"], request["expect_regex"]
    )
    return dict(
        sample,
        ok=kind is None,
        kind=kind,
        problem=problem,
        status=status,
        elapsed_ms=round(seconds * 1000, 3),
        json=parsed,
        body=text[:BODY_KEPT],
    )


def build_request(params: dict) -> dict:
    """The request and expectations from the module's options; EndpointError on bad input."""
    body, body_format = params.get("body"), params.get("body_format", "json")
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    data = None
    if body is not None:
        if body_format == "json" and not isinstance(body, str):
            data = json.dumps(body).encode("utf-8")
        else:
            data = str(body).encode("utf-8")
        if body_format == "json" and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    method = (params.get("method") or ("POST" if body is not None else "GET")).upper()
    regex = params.get("expect_regex")
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            raise EndpointError("expect_regex %r is not a valid regular expression: %s" % (regex, exc)) from None
    urls = params.get("url") or []
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url or ""):
            raise EndpointError("url %r is not an http:// or https:// URL" % (url,))
    if params.get("timeout", 10) <= 0:
        raise EndpointError("timeout must be more than 0 seconds, not %s" % params.get("timeout"))
    return {
        "method": method,
        "data": data,
        "headers": headers,
        "timeout": float(params.get("timeout", 10)),
        "validate_certs": params.get("validate_certs", True),
        "status_code": list(params.get("status_code") or [200]),
        "expect_json": params.get("expect_json"),
        "expect_regex": regex,
    }


def check_stress(options: dict | None) -> dict | None:
    """The stress options, checked before anything is sent; None when no stress test."""
    if not options:
        return None
    for name in ("requests", "concurrency"):
        if options[name] < 1:
            raise EndpointError("stress.%s must be at least 1, not %s" % (name, options[name]))
    if not 0 <= options["max_failure_rate"] <= 1:
        raise EndpointError(
            "stress.max_failure_rate is a fraction between 0 and 1 (0.01 is 1%%), not %s" % options["max_failure_rate"]
        )
    for name in ("max_p95_ms", "timeout"):
        if options.get(name) is not None and options[name] <= 0:
            raise EndpointError("stress.%s must be more than 0, not %s" % (name, options[name]))
    return options


def functional(request: dict, urls: list[str], sender) -> list[dict]:
    """One checked request per URL (up to 10 at a time), in the order of ``urls``."""
    with ThreadPoolExecutor(max_workers=max(1, min(10, len(urls)))) as pool:
        return list(pool.map(lambda url: probe(request, url, sender), urls))


def stress(request: dict, urls: list[str], requests: int, concurrency: int, sender, clock=time.perf_counter):
    """``requests`` checked requests over ``urls`` (round robin), ``concurrency`` at a
    time: (samples, seconds it took)."""
    started = clock()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda i: probe(request, urls[i % len(urls)], sender), range(requests)))
    return samples, clock() - started


# ---------------------------------------------------------------- summaries


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)
    return round(value, 3)


def summarize(samples: list[dict], seconds: float, concurrency: int) -> dict:
    """Counts, error kinds, latency percentiles (of the requests that succeeded) and rate."""
    latencies = sorted(s["elapsed_ms"] for s in samples if s["ok"] and s.get("elapsed_ms") is not None)
    failures = [s for s in samples if not s["ok"]]
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for sample in failures:
        errors[sample["kind"]] = errors.get(sample["kind"], 0) + 1
        examples.setdefault(sample["kind"], "%s %s: %s" % (sample["method"], sample["url"], sample["problem"]))
    count = len(samples)
    return {
        "requests": count,
        "concurrency": concurrency,
        "succeeded": count - len(failures),
        "failures": len(failures),
        "failure_rate": round(len(failures) / count, 6) if count else 0.0,
        "errors": errors,
        "error_examples": examples,
        "latency_ms": {
            "min": latencies[0] if latencies else None,
            "mean": round(sum(latencies) / len(latencies), 3) if latencies else None,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else None,
        },
        "duration_s": round(seconds, 3),
        "requests_per_second": round(count / seconds, 1) if seconds > 0 else None,
    }


def threshold_problems(summary: dict, max_failure_rate: float, max_p95_ms: float | None) -> list[str]:
    problems = []
    if summary["failure_rate"] > max_failure_rate:
        problems.append(
            "%d of %d requests failed (%s, over max_failure_rate %s): %s"
            % (
                summary["failures"],
                summary["requests"],
                _percent(summary["failure_rate"]),
                _percent(max_failure_rate),
                ", ".join("%s %d" % (k, v) for k, v in sorted(summary["errors"].items())),
            )
        )
    p95 = summary["latency_ms"]["p95"]
    if max_p95_ms is not None and p95 is not None and p95 > max_p95_ms:
        problems.append("p95 latency %.1f ms is over max_p95_ms %s" % (p95, max_p95_ms))
    return problems


def _percent(rate: float) -> str:
    return "%.1f%%" % (rate * 100)


def describe_failure(sample: dict) -> str:
    """``POST http://host/predict answered 500, expected 200; answer: {...}``."""
    text = "%s %s: %s" % (sample["method"], sample["url"], sample["problem"])
    if sample.get("body") is not None:
        body = sample["body"]
        text += "; answer: %s" % (body[:BODY_SHOWN] + ("..." if len(body) > BODY_SHOWN else "") if body else "(empty)")
    return text


def stress_line(summary: dict) -> str:
    latency = summary["latency_ms"]

    def ms(value):
        return "-" if value is None else "%.1f ms" % value

    return "%d requests at concurrency %d in %.2fs (%s/s): %d failures, p50 %s, p95 %s, p99 %s, max %s" % (
        summary["requests"],
        summary["concurrency"],
        summary["duration_s"],
        summary["requests_per_second"],
        summary["failures"],
        ms(latency["p50"]),
        ms(latency["p95"]),
        ms(latency["p99"]),
        ms(latency["max"]),
    )


def run(params: dict, sender=None) -> tuple[bool, str, dict]:
    """The whole test: (passed, message, result fields). ``sender`` defaults to HTTP."""
    request = build_request(params)
    options = check_stress(params.get("stress"))
    sender = sender or make_sender(request["validate_certs"])
    urls = list(params["url"])
    results = functional(request, urls, sender)
    failed = [r for r in results if not r["ok"]]
    out: dict = {"results": results, "stress": None}
    if failed:
        message = "functional test failed for %d of %d URL(s): %s" % (
            len(failed),
            len(urls),
            " | ".join(describe_failure(r) for r in failed),
        )
        expected = []
        if request["expect_json"] is not None:
            expected.append("JSON containing %s" % _short(request["expect_json"]))
        if request["expect_regex"] is not None:
            expected.append("a match for %r" % request["expect_regex"])
        if expected:
            message += " (expected status %s with %s)" % (
                " or ".join(str(s) for s in request["status_code"]),
                " and ".join(expected),
            )
        return False, message, out
    message = "%d URL(s) answered as expected" % len(urls)
    if options:
        if options.get("timeout"):
            request = dict(request, timeout=float(options["timeout"]))
        samples, seconds = stress(request, urls, options["requests"], options["concurrency"], sender)
        summary = summarize(samples, seconds, options["concurrency"])
        problems = threshold_problems(summary, options["max_failure_rate"], options.get("max_p95_ms"))
        summary["passed"] = not problems
        summary["problems"] = problems
        out["stress"] = summary
        if problems:
            examples = "; ".join(summary["error_examples"].values())
            return (
                False,
                "stress test failed: %s. %s%s"
                % ("; ".join(problems), stress_line(summary), (". First errors: " + examples) if examples else ""),
                out,
            )
        message += "; stress test passed: %s" % stress_line(summary)
    return True, message, out
