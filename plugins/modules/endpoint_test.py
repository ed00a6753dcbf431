#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: endpoint_test
short_description: Functional test and short stress test of HTTP endpoints (a deployed model API)
version_added: 0.1.0
description:
  - B(Functional test) - sends one request (a known payload) to each URL and checks the answer -
    its status is one of O(status_code), its JSON contains O(expect_json), its text matches
    O(expect_regex). Fails with a message that names each URL, what came back and what was expected.
  - B(Stress test) (optional, O(stress)) - once the functional test passed, sends
    O(stress.requests) of the same request over the URLs (round robin), O(stress.concurrency) at a
    time, each checked like the functional one. Returns the failures by kind and the latency
    percentiles, and fails when the failure rate is over O(stress.max_failure_rate) or the p95
    latency over O(stress.max_p95_ms).
  - Runs on the controller (or wherever the task runs); needs only the Python standard library.
  - RV(ignore:changed) is always V(false).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  url:
    description:
      - The URL, or a list of URLs (for example one per instance), to test. C(http://) or C(https://).
    type: list
    elements: str
    required: true
    aliases: [urls]
  method:
    description:
      - The HTTP method. Defaults to V(POST) when O(body) is given, V(GET) otherwise.
    type: str
  body:
    description:
      - The payload. With O(body_format=json), a dict or list is sent as JSON (a string is sent as it is).
    type: raw
  body_format:
    description:
      - V(json) sends O(body) as JSON with the header C(Content-Type) set to C(application/json) (unless
        O(headers) sets one); V(raw) sends it as it is.
    type: str
    choices: [json, raw]
    default: json
  headers:
    description:
      - Request headers.
    type: dict
    default: {}
  status_code:
    description:
      - The statuses that count as success.
    type: list
    elements: int
    default: [200]
  expect_json:
    description:
      - The answer must be JSON that contains this. Objects match when every key given is there
        with a matching value (more keys are fine), recursively; lists match element by element
        and must have the same length; numbers compare by value (V(1) matches V(1.0)); a boolean
        only matches a boolean.
    type: raw
  expect_regex:
    description:
      - The answer's text must contain a match for this Python regular expression.
    type: str
  timeout:
    description:
      - Seconds to wait for each answer.
    type: float
    default: 10
  validate_certs:
    description:
      - Check the server's TLS certificate for C(https://) URLs.
    type: bool
    default: true
  stress:
    description:
      - Run a short stress test after the functional test passed. Omit for none.
    type: dict
    suboptions:
      requests:
        description: How many requests in all.
        type: int
        default: 100
      concurrency:
        description: How many requests at a time (threads).
        type: int
        default: 10
      timeout:
        description: Seconds to wait for each answer during the stress test; defaults to O(timeout).
        type: float
      max_failure_rate:
        description:
          - The highest share of failed requests (no answer, unexpected status, unexpected answer)
            that still passes, between V(0) and V(1). The default V(0) lets no failure pass.
        type: float
        default: 0
      max_p95_ms:
        description: The highest p95 latency, in milliseconds, that still passes. No limit when omitted.
        type: float
notes:
  - Latency is measured from sending the request to the end of the answer, each request on a new
    connection. Percentiles are of the requests that succeeded, interpolated linearly between the
    closest ranks (as numpy does by default).
  - The stress test is meant to be short (seconds); the controller's CPU and network count in
    its figures, so compare them between runs of the same controller.
attributes:
  check_mode:
    support: full
    description:
      - The requests are sent in check mode too - they are probes that the module expects to change
        nothing on the endpoint (a prediction request, a health check). Skip the task in check
        mode (C(when) V(not ansible_check_mode)) when they would change something.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  idempotent:
    support: full
    description: The module changes nothing (given requests that change nothing on the endpoint).
"""

EXAMPLES = r"""
- name: A known passenger gets the known prediction, on every instance
  mlops.deploy.endpoint_test:
    url: "{{ instance_addresses | map('regex_replace', '^(.*)$', 'http://\\1:8080/predict') | list }}"
    body: {Pclass: 3, Sex: male, Age: 22, SibSp: 1, Parch: 0, Fare: 7.25, Embarked: S}
    expect_json:
      prediction: 0

- name: Health page, then 500 requests at 20 at a time; at most 1% failures and p95 under 250 ms
  mlops.deploy.endpoint_test:
    url: http://titanic.internal:8080/predict
    method: POST
    body: {Pclass: 1, Sex: female, Age: 38, SibSp: 1, Parch: 0, Fare: 71.28, Embarked: C}
    expect_json: {prediction: 1}
    timeout: 5
    stress:
      requests: 500
      concurrency: 20
      max_failure_rate: 0.01
      max_p95_ms: 250
  register: load

- name: Show the stress figures
  ansible.builtin.debug:
    msg: "p95 {{ load.stress.latency_ms.p95 }} ms at {{ load.stress.requests_per_second }} req/s"

- name: A page that must say it is healthy
  mlops.deploy.endpoint_test:
    url: https://api.example.com/health
    expect_regex: '"status":\s*"ok"'
    status_code: [200, 204]
"""

RETURN = r"""
msg:
  description: One line saying what passed (with the stress figures), or what failed.
  returned: always
  type: str
  sample: >-
    1 URL(s) answered as expected; stress test passed: 200 requests at concurrency 10 in 0.41s
    (487.8/s): 0 failures, p50 3.9 ms, p95 8.1 ms, p99 11.0 ms, max 12.4 ms
results:
  description: The functional test, one entry per URL in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The URL.
      type: str
      sample: http://10.0.1.12:8080/predict
    method:
      description: The method used.
      type: str
      sample: POST
    ok:
      description: Whether the answer was as expected.
      type: bool
    status:
      description: The HTTP status, V(null) when there was no answer.
      type: int
      sample: 200
    elapsed_ms:
      description: Milliseconds the request took, V(null) when there was no answer.
      type: float
      sample: 4.2
    kind:
      description:
        - Why it failed, V(null) when it did not. V(status) (unexpected status), V(body) (unexpected
          answer), V(timeout), V(connection_refused), V(connection_reset), V(tls), V(dns), V(protocol)
          or V(connection_error).
      type: str
    problem:
      description: What was wrong, V(null) when nothing.
      type: str
      sample: answered 503, expected 200
    json:
      description: The answer parsed as JSON, V(null) when it is not JSON.
      type: raw
      sample: {prediction: 0, probability: 0.0836, model_version: titanic-logreg-1}
    body:
      description: The answer's text (its first 4000 characters).
      type: str
stress:
  description: The stress test's figures; V(null) when no stress test ran (none asked, or the functional test failed).
  returned: always
  type: dict
  contains:
    requests:
      description: Requests sent.
      type: int
      sample: 200
    concurrency:
      description: Requests at a time.
      type: int
      sample: 10
    succeeded:
      description: Requests answered as expected.
      type: int
      sample: 200
    failures:
      description: Requests that failed.
      type: int
      sample: 0
    failure_rate:
      description: Failures divided by requests.
      type: float
      sample: 0.0
    errors:
      description: Failures by kind (the kinds of RV(results[].kind)).
      type: dict
      sample: {timeout: 3, status: 1}
    error_examples:
      description: The first failure of each kind, as a sentence.
      type: dict
      sample: {timeout: "POST http://10.0.1.12:8080/predict: no answer: timeout (timed out)"}
    latency_ms:
      description: Latency of the requests that succeeded, in milliseconds (V(null) values when none did).
      type: dict
      contains:
        min:
          description: Fastest.
          type: float
        mean:
          description: Mean.
          type: float
        p50:
          description: Median.
          type: float
        p95:
          description: 95th percentile.
          type: float
        p99:
          description: 99th percentile.
          type: float
        max:
          description: Slowest.
          type: float
    duration_s:
      description: Seconds the stress test took.
      type: float
      sample: 0.41
    requests_per_second:
      description: Requests divided by RV(stress.duration_s).
      type: float
      sample: 487.8
    passed:
      description: Whether the thresholds were met.
      type: bool
    problems:
      description: The thresholds that were not met, as sentences.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.deploy.plugins.module_utils._endpoint_test import EndpointError, run


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "list", "elements": "str", "required": True, "aliases": ["urls"]},
            "method": {"type": "str"},
            "body": {"type": "raw"},
            "body_format": {"type": "str", "choices": ["json", "raw"], "default": "json"},
            "headers": {"type": "dict", "default": {}},
            "status_code": {"type": "list", "elements": "int", "default": [200]},
            "expect_json": {"type": "raw"},
            "expect_regex": {"type": "str"},
            "timeout": {"type": "float", "default": 10},
            "validate_certs": {"type": "bool", "default": True},
            "stress": {
                "type": "dict",
                "options": {
                    "requests": {"type": "int", "default": 100},
                    "concurrency": {"type": "int", "default": 10},
                    "timeout": {"type": "float"},
                    "max_failure_rate": {"type": "float", "default": 0},
                    "max_p95_ms": {"type": "float"},
                },
            },
        },
        supports_check_mode=True,
    )
    if not module.params["url"]:
        module.fail_json(msg="url is empty: give at least one URL to test")
    try:
        passed, message, result = run(module.params)
    except EndpointError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if not passed:
        module.fail_json(msg=message, changed=False, **result)
    module.exit_json(changed=False, msg=message, **result)


if __name__ == "__main__":
    main()
