#!/usr/bin/env python3
"""The streaming front door (infra/streaming.tf) checked from the .tf files.

ministack cannot run it (no Cognito authorizers, no response streaming for REST APIs), so
`make deploy-local` deploys with streaming_api = false and this script checks what
`terraform apply` would create instead: every resource instance of infra/*.tf evaluated
with tools/tfeval.py (computed attributes such as ids and ARNs are named placeholders),
then the routes, the authorizer, the integrations, the stage and the generate function's
settings asserted, for the defaults, for streaming_api = false, and for an external
identity provider (which streaming_api must refuse).

    tools/check_streaming_tf.py [--infra DIR] [--self-test]

--self-test also runs the checks on copies of infra/ with one defect each (a buffered
integration, the buffered invoke URI, the buffered generate behind the REST API, an unguarded
reference to generate-stream, a route missing, a generate route dropped from the HTTP API, a method without the authorizer, the
stage kept in paths, generate itself in streaming mode) and fails unless every copy is refused.
Exits non-zero on any failed check.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tfeval  # noqa: E402
from tfeval import EvalError, NotCreated, body_items  # noqa: E402

DATA = {"aws_caller_identity": {"account_id": "123456789012"}, "aws_partition": {"partition": "aws"}}
STREAMING_ENV = {"LAMBDA_RESPONSE_MODE", "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "LLM_STREAM_MAX_SECS"}
SKIP = {"for_each", "count", "depends_on", "lifecycle", "provider", "__file__"}


class Computed(dict):
    """An instance's attributes: its evaluated arguments, and a named placeholder for
    anything AWS computes (id, arn, invoke_url...)."""

    def __init__(self, label, args):
        super().__init__(args)
        self.label = label

    def __contains__(self, key):
        return True

    def __missing__(self, key):
        return f"<{self.label}.{key}>"


# The Lambda zips need not be built for a plan: their hash is all the .tf reads of them.
ZIP = tempfile.NamedTemporaryFile(prefix="check-streaming-tf-", suffix=".zip")
ZIPS = {v: ZIP.name for v in ("settings_zip_path", "generate_zip_path", "usage_zip_path")}


def plan(infra: str, overrides: dict) -> tfeval.Evaluator:
    """Every resource instance, evaluated in dependency order (a resource whose references
    are not planned yet waits for the next round), preconditions checked."""
    ev = tfeval.Evaluator(infra, dict(ZIPS, **overrides), data_sources=dict(DATA))
    ev.check_validations()
    pending = dict(ev.module["resource"])
    while pending:
        progressed = False
        for key, body in list(pending.items()):
            rtype, rname = key

            def make(scope, body=body, key=key):
                label = f"{key[0]}.{key[1]}" + (f"[{scope['each']['key']!r}]" if "each" in scope else
                                                  f"[{scope['count']['index']}]" if "count" in scope else "")
                for lc in body.get("lifecycle", []) if tfeval.is_block_list(body.get("lifecycle")) else []:
                    for pc in lc.get("precondition", []):
                        if ev.value(pc["condition"], scope) is not True:
                            raise EvalError(f"{label}: precondition failed: {ev.value(pc['error_message'], scope)}")
                args = {k: ev.value(v, scope) for k, v in body_items(body) if k not in SKIP}
                return Computed(label, args)

            try:
                ev.resources[key] = ev.instances(body, make, key)
            except NotCreated:
                continue
            del pending[key]
            progressed = True
        if not progressed:
            raise EvalError(f"resources that refer to each other in a cycle: {sorted(pending)}")
    # Terraform evaluates every local and output, used or not: so must the plan (a local
    # that indexes a resource instance absent in this configuration fails the plan).
    for name in ev.module["locals"]:
        ev._local(name)
    for name, body in ev.module["output"].items():
        ev.value(body["value"], {})
    return ev


def instances(ev, rtype, rname=None):
    """All instances of a type (or of one resource) as a flat list."""
    out = []
    for (t, n), inst in ev.resources.items():
        if t != rtype or (rname is not None and n != rname):
            continue
        out.extend(inst.values() if isinstance(inst, dict) and not isinstance(inst, Computed) else
                   inst if isinstance(inst, list) else [inst])
    return out


class Checks:
    def __init__(self, name):
        self.name = name
        self.failed = []
        self.passed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed.append(f"{what}" + (f": {detail}" if detail else ""))


def resource_path(ev, resource_id):
    """/v1/chat/completions from a method's resource_id, through the parents."""
    api = instances(ev, "aws_api_gateway_rest_api", "stream")[0]
    by_id = {r["id"]: r for r in instances(ev, "aws_api_gateway_resource")}
    parts = []
    while resource_id != api["root_resource_id"]:
        r = by_id.get(resource_id)
        if r is None:
            return None
        parts.append(r["path_part"])
        resource_id = r["parent_id"]
    return "/" + "/".join(reversed(parts))


def check_streaming_on(ev, c):
    region = ev.vars["aws_region"]
    max_secs = ev.vars["stream_max_seconds"]
    functions = ev.resources[("aws_lambda_function", "this")]
    generate = functions["generate"]
    streamer = functions.get("generate-stream")
    c.check("a generate-stream function", streamer is not None, str(sorted(functions)))
    if streamer is None:
        return
    generate_routes = sorted(ev._local("generate_routes"))
    c.check("the generate function has routes", len(generate_routes) >= 5, str(generate_routes))
    for route in ("POST /api/llm-generate/{userId}", "POST /v1/chat/completions", "POST /v1/messages"):
        c.check(f"{route} is a generate route", route in generate_routes)

    apis = instances(ev, "aws_api_gateway_rest_api", "stream")
    c.check("one streaming REST API", len(apis) == 1, str(len(apis)))
    if len(apis) != 1:
        return
    api = apis[0]
    c.check("the REST API is regional", api["endpoint_configuration"][0]["types"] == ["REGIONAL"])

    pool = ev.resources[("aws_cognito_user_pool", "this")][0]
    auths = instances(ev, "aws_api_gateway_authorizer")
    c.check("one authorizer", len(auths) == 1, str(len(auths)))
    auth = auths[0]
    c.check("the authorizer is the module's Cognito user pool",
            auth["type"] == "COGNITO_USER_POOLS" and auth["provider_arns"] == [pool["arn"]], str(dict(auth)))
    c.check("the authorizer reads the Authorization header",
            auth["identity_source"] == "method.request.header.Authorization")

    methods = instances(ev, "aws_api_gateway_method", "stream")
    routes = {}
    for m in methods:
        path = resource_path(ev, m["resource_id"])
        routes[f"{m['http_method']} {path}"] = m
        c.check(f"{m['http_method']} {path}: on the REST API", m["rest_api_id"] == api["id"])
    c.check("the REST API's methods are exactly the generate routes", sorted(routes) == generate_routes,
            f"{sorted(routes)} != {generate_routes}")
    for route, m in routes.items():
        c.check(f"{route}: the Cognito authorizer", m["authorization"] == "COGNITO_USER_POOLS"
                and m["authorizer_id"] == auth["id"], f"{m['authorization']} {m['authorizer_id']}")

    uri = (f"arn:aws:apigateway:{region}:lambda:path/2021-11-15/functions/{streamer['arn']}"
           "/response-streaming-invocations")
    integrations = instances(ev, "aws_api_gateway_integration", "stream")
    c.check("one integration per method", len(integrations) == len(methods), f"{len(integrations)} vs {len(methods)}")
    for i in integrations:
        route = next((r for r, m in routes.items()
                      if m["resource_id"] == i["resource_id"] and m["http_method"] == i["http_method"]), None)
        c.check(f"{route}: an integration of a method", route is not None)
        c.check(f"{route}: AWS_PROXY, POST", i["type"] == "AWS_PROXY" and i["integration_http_method"] == "POST")
        c.check(f"{route}: response_transfer_mode STREAM", i.get("response_transfer_mode") == "STREAM",
                str(i.get("response_transfer_mode")))
        c.check(f"{route}: Lambda's response-streaming invocation of generate-stream", i["uri"] == uri, i["uri"])
        t = i.get("timeout_milliseconds", 29000)
        c.check(f"{route}: integration timeout past the stream ceiling, within 900 s",
                max_secs * 1000 < t <= 900_000, str(t))

    env = streamer["environment"][0]["variables"]
    c.check("generate-stream streams its responses", env.get("LAMBDA_RESPONSE_MODE") == "streaming", str(env))
    c.check("generate-stream ignores the REST stage in paths",
            env.get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH") == "true")
    c.check("generate-stream's stream ceiling is stream_max_seconds", env.get("LLM_STREAM_MAX_SECS") == str(max_secs))
    c.check("generate-stream's timeout is past the integration's, within Lambda's 900 s",
            max((i.get("timeout_milliseconds", 0) for i in integrations), default=0)
            < streamer["timeout"] * 1000 <= 900_000, str(streamer["timeout"]))
    c.check("generate-stream runs generate's code", streamer["filename"] == generate["filename"]
            and streamer["source_code_hash"] == generate["source_code_hash"])
    gen_env = generate["environment"][0]["variables"]
    c.check("generate-stream has generate's settings besides streaming",
            {k: v for k, v in env.items() if k not in STREAMING_ENV} == gen_env, str(set(env) ^ set(gen_env)))
    policies = ev.resources[("aws_iam_role_policy", "function")]
    c.check("generate-stream's role has generate's permissions",
            "generate-stream" in policies and policies["generate-stream"]["policy"] == policies["generate"]["policy"]
            and policies["generate-stream"]["role"] == ev.resources[("aws_iam_role", "lambda")]["generate-stream"]["id"])

    c.check("generate answers buffered for the HTTP API", "LAMBDA_RESPONSE_MODE" not in gen_env
            and generate["timeout"] <= 30, f"{generate['timeout']} {gen_env.get('LAMBDA_RESPONSE_MODE')}")
    http_routes = {r["route_key"]: r for r in instances(ev, "aws_apigatewayv2_route", "jwt")}
    c.check("every route stays on the HTTP API, with the JWT authorizer (generate's too, buffered)",
            all(r in http_routes and http_routes[r]["authorization_type"] == "JWT" for r in ev._local("api_routes")),
            str(sorted(set(ev._local("api_routes")) - set(http_routes))))
    c.check("no HTTP API integration invokes generate-stream (it answers no buffered invocation)",
            all(i["integration_uri"] != streamer["invoke_arn"] for i in instances(ev, "aws_apigatewayv2_integration")))

    stage = instances(ev, "aws_api_gateway_stage", "stream")[0]
    deployment = instances(ev, "aws_api_gateway_deployment", "stream")[0]
    c.check("the stage serves the deployment", stage["deployment_id"] == deployment["id"])
    c.check("the deployment is redeployed on change", bool(deployment["triggers"].get("redeployment")))
    logs = ev.resources[("aws_cloudwatch_log_group", "api_stream")]
    log = logs["access"]
    c.check("the stage writes an access log", stage["access_log_settings"][0]["destination_arn"] == log["arn"])
    c.check("the stage is traced", stage.get("xray_tracing_enabled") is True)
    execution = logs.get("execution")
    c.check("the stage's execution log group is the module's (retention, CMK)", execution is not None
            and execution["name"] == f"API-Gateway-Execution-Logs_{api['id']}/{stage['stage_name']}"
            and execution.get("kms_key_id") and execution.get("retention_in_days"))
    http_stage = instances(ev, "aws_apigatewayv2_stage", "default")[0]["default_route_settings"][0]
    ms = instances(ev, "aws_api_gateway_method_settings", "stream")[0]
    s = ms["settings"][0]
    c.check("method settings on every method of the stage",
            ms["method_path"] == "*/*" and ms["stage_name"] == stage["stage_name"])
    c.check("the HTTP API's throttling", s["throttling_burst_limit"] == http_stage["throttling_burst_limit"]
            and s["throttling_rate_limit"] == http_stage["throttling_rate_limit"],
            f"{s['throttling_burst_limit']}/{s['throttling_rate_limit']} vs "
            f"{http_stage['throttling_burst_limit']}/{http_stage['throttling_rate_limit']}")
    c.check("no request/response bodies in execution logs", s.get("data_trace_enabled") is False)

    perms = instances(ev, "aws_lambda_permission", "stream")
    c.check("API Gateway may invoke generate-stream from the REST API", len(perms) == 1
            and perms[0]["function_name"] == streamer["function_name"]
            and perms[0]["principal"] == "apigateway.amazonaws.com"
            and perms[0]["source_arn"].startswith(api["execution_arn"] + "/"))
    c.check("the generate_endpoint output is the REST stage",
            ev.value(ev.module["output"]["generate_endpoint"]["value"], {}) == stage["invoke_url"])


def check_routes_match_code(ev, c):
    """infra's routes (api_routes and public_api_routes) are the routers' routes, as
    shared/src/http/openapi.rs lists them (ROUTES, which the Rust tests check against the
    routers): a route the code serves but API Gateway does not know answers 404 on AWS."""
    src = Path(__file__).resolve().parent.parent / "shared" / "src" / "http" / "openapi.rs"
    table = re.search(r"pub const ROUTES: &\[\(&str, &str\)\] = &\[(.*?)\n\];", src.read_text(), re.S)
    c.check("ROUTES found in shared/src/http/openapi.rs", table is not None)
    if table is None:
        return
    code = {f"{m.upper()} {p}" for m, p in re.findall(r'\(\s*"(\w+)",\s*"([^"]+)",?\s*\)', table.group(1))}
    infra = set(ev._local("api_routes")) | set(ev._local("public_api_routes"))
    c.check("every route the code serves is in infra/apigw.tf", not code - infra, str(sorted(code - infra)))
    c.check("every route in infra/apigw.tf is served by the code", not infra - code, str(sorted(infra - code)))


def check_streaming_off(ev, c):
    c.check("no generate-stream function", "generate-stream" not in ev.resources[("aws_lambda_function", "this")])
    c.check("no REST API resources", not any(instances(ev, t) for t in (
        "aws_api_gateway_rest_api", "aws_api_gateway_method", "aws_api_gateway_integration",
        "aws_api_gateway_stage", "aws_api_gateway_account")))
    http_routes = {r["route_key"] for r in instances(ev, "aws_apigatewayv2_route")}
    missing = set(ev._local("api_routes")) - http_routes
    c.check("every route on the HTTP API (the generate routes included)", not missing, str(sorted(missing)))
    generate = ev.resources[("aws_lambda_function", "this")]["generate"]
    env = generate["environment"][0]["variables"]
    c.check("generate answers buffered", "LAMBDA_RESPONSE_MODE" not in env, str(env))
    c.check("generate's timeout fits the HTTP API's 30 s", generate["timeout"] <= 30, str(generate["timeout"]))


def run(infra: str) -> list[Checks]:
    results = []
    c = Checks("defaults (streaming_api = true)")
    try:
        ev = plan(infra, {})
        check_routes_match_code(ev, c)
        check_streaming_on(ev, c)
    except Exception as e:  # noqa: BLE001 (any error is a failed check, with its reason)
        c.check("the module plans", False, f"{type(e).__name__}: {e}")
    results.append(c)

    c = Checks("streaming_api = false")
    try:
        check_streaming_off(plan(infra, {"streaming_api": "false"}), c)
    except Exception as e:  # noqa: BLE001 (any error is a failed check, with its reason)
        c.check("the module plans", False, f"{type(e).__name__}: {e}")
    results.append(c)

    external = {"jwt_issuer": "https://idp.example.com/", "jwt_audience": '["gateway"]'}
    c = Checks("external identity provider")
    try:
        plan(infra, external)
        c.check("streaming_api with an external issuer is refused", False, "planned")
    except EvalError as e:
        c.check("streaming_api with an external issuer is refused", "streaming_api" in str(e), str(e))
    try:
        check_streaming_off(plan(infra, dict(external, streaming_api="false")), c)
    except Exception as e:  # noqa: BLE001 (any error is a failed check, with its reason)
        c.check("the module plans with streaming_api = false", False, f"{type(e).__name__}: {e}")
    results.append(c)
    return results


def report(results) -> bool:
    ok = True
    for c in results:
        print(f"check-streaming-tf: {c.name}: {c.passed} passed, {len(c.failed)} failed")
        for f in c.failed:
            print(f"  FAIL {f}")
        ok = ok and not c.failed
    return ok


# One defect per copy of infra/: each must make a check fail.
DEFECTS = [
    ("a buffered integration", "streaming.tf", r'response_transfer_mode\s*=\s*"STREAM"',
     'response_transfer_mode = "BUFFERED"'),
    ("the buffered invoke URI", "streaming.tf", r'path/2021-11-15/functions/(\$\{[^}]+\})/response-streaming-invocations',
     r'path/2015-03-31/functions/\1/invocations'),
    ("the buffered generate behind the REST API", "streaming.tf",
     r'functions/\$\{aws_lambda_function\.this\["generate-stream"\]\.arn\}', 'functions/${aws_lambda_function.this["generate"].arn}'),
    ("a generate route dropped from the HTTP API", "apigw.tf",
     r'for_each = local\.api_routes\n', 'for_each = { for r, f in local.api_routes : r => f if f != "generate" }\n'),
    ("a route the code serves missing from the .tf", "apigw.tf", r'\n\s*"POST /v1/embeddings"\s*= "generate"', ""),
    ("an unguarded reference to generate-stream", "streaming.tf",
     r'generate_streaming_uri = local\.streaming_api \? (.*) : null\n', r'generate_streaming_uri = \1\n'),
    ("a method without the authorizer", "streaming.tf", r'authorization = "COGNITO_USER_POOLS"',
     'authorization = "NONE"'),
    ("the stage prefix kept in paths", "lambda.tf", r'AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH = "true"',
     'AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH = "false"'),
    ("generate itself in streaming mode", "lambda.tf", r'environment          = local\.generate_environment',
     'environment = merge(local.generate_environment, { LAMBDA_RESPONSE_MODE = "streaming" })'),
]


def self_test(infra: str) -> bool:
    ok = True
    for what, fname, pattern, repl in DEFECTS:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "infra"
            shutil.copytree(infra, copy, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
            text = (copy / fname).read_text()
            broken, n = re.subn(pattern, repl, text)
            if n == 0:
                print(f"check-streaming-tf: self-test: {what}: pattern not found in {fname}")
                ok = False
                continue
            (copy / fname).write_text(broken)
            # A defect must fail a check, or the plan as Terraform would (EvalError), not
            # break the files (a parse error would prove nothing).
            failed = [f for c in run(str(copy)) for f in c.failed
                      if not f.startswith("the module plans") or ": EvalError: " in f]
            print(f"check-streaming-tf: self-test: {what}: " +
                  (f"refused ({failed[0]})" if failed else "NOT refused"))
            ok = ok and bool(failed)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--infra", default=str(Path(__file__).resolve().parent.parent / "infra"))
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    ok = report(run(a.infra))
    if a.self_test:
        ok = self_test(a.infra) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
