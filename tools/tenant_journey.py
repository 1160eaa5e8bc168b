"""The tenant part of the emulator deployment journey (called by deploy_local.py): users
placed in tenants by an operator (the pool's custom:tenant attribute, the
llm-tenant-admin group) sign in with real Cognito tokens; a tenant admin saves the
tenant's key, a member reads the settings but cannot write them, another tenant's admin
can do neither, a global admin reads them; the member, who has no key of their own, is
served with the tenant's (key_source tenant), the tenant's usage reports count it, and
once the tenant admin deletes the key the member has none. The tenant's key must never
leave Secrets Manager: the caller checks every response body and log line for it."""
from __future__ import annotations

import json
import time
import uuid

import boto3
from botocore.exceptions import ClientError

TENANT = "acme"
OTHER_TENANT = "globex"
MODEL = "claude-3-5-sonnet-20241022"


def tenant_journey(d, ev, j, stub, ops, b64url_json, emulator_policy) -> str | None:
    """Runs the tenant checks; returns the tenant's key (for the caller's leak checks)."""
    if stub is None:
        print("# tenant journey skipped: it needs the loopback Anthropic stub (no --no-test-route)")
        return None
    idp = d.c("cognito-idp")
    pool_id = ev.resources[("aws_cognito_user_pool", "this")][0]["id"]
    client_id = ev.resources[("aws_cognito_user_pool_client", "this")][0]["id"]
    tenant_admin_group = ev.resources[("aws_cognito_user_group", "tenant_admin")][0]["name"]
    tenant_claim = ev.vars["tenant_claim"]
    secret_prefix = ev.vars["secret_prefix"]
    password = "Tenant-Passw0rd-" + uuid.uuid4().hex[:8]

    # What the .tf made of the pool and its client.
    pool = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    attr = next((a for a in pool.get("SchemaAttributes", []) if a.get("Name") == tenant_claim), None)
    j.check(f"the pool has the custom attribute {tenant_claim} (String, mutable)",
            attr is not None and attr.get("AttributeDataType") == "String" and attr.get("Mutable") is True,
            str(attr))
    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    write_attrs, read_attrs = client.get("WriteAttributes") or [], client.get("ReadAttributes") or []
    j.check(f"the app client may read {tenant_claim} but not write it (non-empty WriteAttributes without it)",
            bool(write_attrs) and tenant_claim not in write_attrs and tenant_claim in read_attrs,
            f"read {read_attrs}, write {write_attrs}")
    j.check("the tenant admin group is var.tenant_admin_group, and the functions read that group",
            tenant_admin_group == ev.vars["tenant_admin_group"]
            and all(d.tf_env[fn].get("TENANT_ADMIN_GROUP") == tenant_admin_group
                    and d.tf_env[fn].get("TENANT_CLAIM") == tenant_claim for fn in d.tf_env),
            f"{tenant_admin_group}; "
            f"{[(fn, e.get('TENANT_CLAIM'), e.get('TENANT_ADMIN_GROUP')) for fn, e in d.tf_env.items()]}")

    # Operator steps, as infra/README.md gives them: create, put in a tenant, add to the group.
    def user(name, tenant=None, tenant_admin=False):
        idp.admin_create_user(UserPoolId=pool_id, Username=name, TemporaryPassword=password + "t",
                              MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=password, Permanent=True)
        if tenant is not None:
            idp.admin_update_user_attributes(UserPoolId=pool_id, Username=name,
                                             UserAttributes=[{"Name": tenant_claim, "Value": tenant}])
        if tenant_admin:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName=tenant_admin_group)
        tok = idp.admin_initiate_auth(UserPoolId=pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                      AuthParameters={"USERNAME": name, "PASSWORD": password}
                                      )["AuthenticationResult"]["IdToken"]
        return tok, b64url_json(tok.split(".")[1])

    admin, admin_claims = user("acme-admin", TENANT, tenant_admin=True)
    member, member_claims = user("acme-member", TENANT)
    gadmin, _ = user("globex-admin", OTHER_TENANT, tenant_admin=True)
    member_sub = member_claims["sub"]
    j.check(f"acme-admin's ID token: {tenant_claim}=acme and {tenant_admin_group} in cognito:groups",
            admin_claims.get(tenant_claim) == TENANT
            and tenant_admin_group in (admin_claims.get("cognito:groups") or []),
            str({k: admin_claims.get(k) for k in (tenant_claim, "cognito:groups")}))
    j.check(f"acme-member's ID token: {tenant_claim}=acme, no groups",
            member_claims.get(tenant_claim) == TENANT and not member_claims.get("cognito:groups"),
            str({k: member_claims.get(k) for k in (tenant_claim, "cognito:groups")}))
    # The user-password flow (a user signing in themself) carries the tenant too.
    flow = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                             AuthParameters={"USERNAME": "acme-member", "PASSWORD": password})
    flow_claims = b64url_json(flow["AuthenticationResult"]["IdToken"].split(".")[1])
    j.check(f"USER_PASSWORD_AUTH ID token carries {tenant_claim}=acme", flow_claims.get(tenant_claim) == TENANT,
            str(flow_claims.get(tenant_claim)))
    # AWS refuses UpdateUserAttributes on an attribute outside the client's WriteAttributes;
    # ministack does not enforce WriteAttributes, so this probe (a throwaway user without
    # a tenant) is reported, not checked.
    probe, _ = user("tenant-probe")
    probe_access = idp.admin_initiate_auth(UserPoolId=pool_id, ClientId=client_id,
                                           AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                           AuthParameters={"USERNAME": "tenant-probe", "PASSWORD": password}
                                           )["AuthenticationResult"]["AccessToken"]
    try:
        idp.update_user_attributes(AccessToken=probe_access, UserAttributes=[{"Name": tenant_claim, "Value": TENANT}])
        print(f"# note: the emulator let a user write their own {tenant_claim} (it does not enforce the client's "
              f"WriteAttributes {write_attrs}; AWS refuses the write)")
    except ClientError as e:
        print(f"# the emulator refused a user's own write of {tenant_claim}: {e.response['Error'].get('Code')}")

    # Tenant settings: the admin writes, the member reads, others get 403.
    p = f"/api/tenants/{TENANT}/llm-settings"
    tenant_key = "sk-ant-api03-" + "T9e8N7a6N5t4K3e2Y1z0" * 3 + "T3n4"
    st, js, text = j.expect("acme-admin PUT tenant settings with an anthropic key -> 200", "PUT", p, 200, token=admin,
                            body={"preferences": {"maxTokens": 300}, "apiKeys": {"anthropic": tenant_key}})
    ok = isinstance(js, dict)
    j.check("tenant PUT answer: hasApiKeys.anthropic true, keyHints.anthropic …T3n4, no key",
            ok and js.get("hasApiKeys", {}).get("anthropic") is True
            and js.get("keyHints", {}).get("anthropic") == "\u2026T3n4" and tenant_key not in text, text[:300])
    st, js, text = j.expect("acme-member GET tenant settings -> 200", "GET", p, 200, token=member)
    j.check("member sees hasApiKeys.anthropic true and the hint only",
            isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is True
            and js.get("keyHints", {}).get("anthropic") == "\u2026T3n4" and tenant_key not in text, text[:300])
    j.expect("acme-member PUT tenant settings -> 403", "PUT", p, 403, token=member,
             body={"preferences": {"maxTokens": 5}})
    j.expect("acme-member POST tenant /test -> 403 (the test calls a provider with the tenant's keys)", "POST",
             f"{p}/test", 403, token=member, body={"provider": "anthropic"})
    j.expect("acme-member DELETE the tenant key -> 403", "DELETE", f"{p}/keys/anthropic", 403, token=member)
    j.expect("globex-admin GET acme's settings -> 403", "GET", p, 403, token=gadmin)
    j.expect("globex-admin PUT acme's settings -> 403", "PUT", p, 403, token=gadmin,
             body={"preferences": {"maxTokens": 5}})
    st, js, text = j.expect("globex-admin GET globex's own settings -> 200", "GET",
                            f"/api/tenants/{OTHER_TENANT}/llm-settings", 200, token=gadmin)
    j.check("globex has no anthropic key (acme's is not shared)",
            isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is False, text[:300])
    st, js, text = j.expect("ops (global admin) GET acme's settings -> 200", "GET", p, 200, token=ops)
    j.check("ops sees the hint only", isinstance(js, dict) and js.get("keyHints", {}).get("anthropic") == "\u2026T3n4"
            and tenant_key not in text, text[:300])
    j.expect("acme-admin GET the member's own settings -> 403 (tenant admins do not manage members)",
             "GET", f"/api/llm-settings/{member_sub}", 403, token=admin)
    before = len(stub.requests)
    st, js, text = j.expect("acme-admin POST tenant /test (saved tenant key, stub) -> 200", "POST", f"{p}/test", 200,
                            token=admin, body={"provider": "anthropic"})
    j.check("tenant test: success true, the stub got the tenant's key",
            isinstance(js, dict) and js.get("success") is True
            and any(tenant_key in json.dumps(r["headers"]) for r in stub.requests[before:]), text[:300])

    # In Secrets Manager, under tenants/<tenantId>/llm/<provider>.
    sm = d.c("secretsmanager")
    cmk_arn = ev.resources[("aws_kms_key", "this")]["arn"]
    secret_name = f"{secret_prefix}tenants/{TENANT}/llm/anthropic"
    secret_existed = False
    try:
        desc = sm.describe_secret(SecretId=secret_name)
        secret_existed = True
        j.check(f"tenant secret {secret_name} exists, encrypted with the CMK",
                desc.get("KmsKeyId") in (cmk_arn, cmk_arn.split("/")[-1]), f"{desc.get('KmsKeyId')} vs {cmk_arn}")
        settings_table = ev.resources[("aws_dynamodb_table", "settings")]["name"]
        item = d.c("dynamodb").get_item(
            TableName=settings_table, ConsistentRead=True,
            Key={"user_id": {"S": f"tenant/{TENANT}"}, "setting_type": {"S": "llm_preferences"}}).get("Item") or {}
        version = item.get("keys", {}).get("M", {}).get("anthropic", {}).get("M", {}).get("version", {}).get("S")
        got = sm.get_secret_value(SecretId=secret_name, **({"VersionId": version} if version else {}))
        j.check("the tenant secret holds the key; the tenant's settings item does not",
                got.get("SecretString") == tenant_key and bool(item) and tenant_key not in json.dumps(item),
                f"version {version}, item {str(item)[:200]}")
    except ClientError as e:
        j.check(f"tenant secret {secret_name} exists and is readable", False, str(e))

    # The member has no key of their own: generate serves them with the tenant's.
    g = f"/api/llm-generate/{member_sub}"
    req = {"prompt": "Summarise yesterday's failed logins by source IP.", "provider": "anthropic", "model": MODEL,
           "cache": False}
    before = len(stub.requests)
    st, js, text = j.expect("acme-member POST /api/llm-generate (no own key, the tenant's) -> 200", "POST", g, 200,
                            token=member, body=req)
    request_id = js.get("requestId") if isinstance(js, dict) else None
    upstream = stub.requests[before:]
    j.check("the stub upstream got the tenant's key for the member's request",
            any(tenant_key in json.dumps(r["headers"]) for r in upstream),
            f"{len(upstream)} upstream requests")
    # The member saved no preferences: the tenant's maxTokens (300) is theirs.
    sent = [json.loads(r["body"] or "{}") for r in upstream if r["method"] == "POST"]
    j.check("the member's request went upstream with the tenant's maxTokens (300)",
            bool(sent) and all(b.get("max_tokens") == 300 for b in sent), str([b.get("max_tokens") for b in sent]))

    # Who may touch the tenant's secret, with each role's own permission document (as a
    # test-fixture IAM user: the roles trust Lambda only): generate reads, never writes;
    # llm-usage does not read it.
    policies = {fn: json.loads(ev.resources[("aws_iam_role_policy", "function")][fn]["policy"])
                for fn in ("generate", "llm-usage")}
    iam = d.c("iam")
    probes = {}
    for fn, policy in policies.items():
        name = f"journey-{fn}-tenant-secret-probe"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{fn}-permissions", PolicyDocument=emulator_policy(policy))
        ak = iam.create_access_key(UserName=name)["AccessKey"]
        probes[fn] = boto3.client("secretsmanager", endpoint_url=d.endpoint, region_name=d.region,
                                  aws_access_key_id=ak["AccessKeyId"], aws_secret_access_key=ak["SecretAccessKey"])

    def denied(call):
        try:
            call()
            return False, "allowed"
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            return "AccessDenied" in code, code
    try:
        probes["generate"].get_secret_value(SecretId=secret_name)
        j.check("with the generate permissions: GetSecretValue on the tenant's secret allowed", True)
    except ClientError as e:
        j.check("with the generate permissions: GetSecretValue on the tenant's secret allowed", False, str(e))
    ok, why = denied(lambda: probes["generate"].put_secret_value(SecretId=secret_name, SecretString="x"))
    j.check("with the generate permissions: PutSecretValue on the tenant's secret denied", ok, why)
    ok, why = denied(lambda: probes["llm-usage"].get_secret_value(SecretId=secret_name))
    j.check("with the llm-usage permissions: GetSecretValue on the tenant's secret denied", ok, why)
    st, js, text = j.expect("acme-member GET own usage -> 200", "GET", f"/api/llm-usage/{member_sub}", 200,
                            token=member)
    entry = next((e for e in ((js or {}).get("entries") or []) if e.get("request_id") == request_id), None) \
        if isinstance(js, dict) else None
    j.check("the member's usage entry: tenant_id acme, key_source tenant",
            entry is not None and entry.get("tenant_id") == TENANT and entry.get("key_source") == "tenant",
            f"request {request_id}: {str(entry)[:300]}")

    # The tenant's reports: every member's requests; other tenants' admins get 403.
    u = f"/api/tenants/{TENANT}/llm-usage"
    st, js, text = j.expect("acme-admin GET tenant summary -> 200", "GET", f"{u}/summary", 200, token=admin)
    j.check("tenant summary counts the member's request (1 request, anthropic)",
            isinstance(js, dict) and js.get("total_requests") == 1
            and (js.get("by_provider") or {}).get("anthropic", {}).get("requests") == 1, text[:300])
    j.expect("acme-member GET tenant summary -> 200 (members read)", "GET", f"{u}/summary", 200, token=member)
    j.expect("globex-admin GET acme's summary -> 403", "GET", f"{u}/summary", 403, token=gadmin)
    j.expect("acme-admin GET globex's summary -> 403", "GET", f"/api/tenants/{OTHER_TENANT}/llm-usage/summary", 403,
             token=admin)
    st, js, text = j.expect("globex-admin GET globex's summary -> 200", "GET",
                            f"/api/tenants/{OTHER_TENANT}/llm-usage/summary", 200, token=gadmin)
    j.check("globex's summary is empty", isinstance(js, dict) and js.get("total_requests") == 0, text[:300])
    st, js, text = j.expect("acme-admin GET tenant daily?days=7 -> 200", "GET", f"{u}/daily?days=7", 200, token=admin)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    row = next((r for r in ((js or {}).get("days") or []) if r.get("date") == today), None) \
        if isinstance(js, dict) else None
    j.check("tenant daily: today's row has the member's request", row is not None and row.get("requests") == 1,
            text[:300])
    st, js, text = j.expect("acme-admin GET tenant last24h -> 200", "GET", f"{u}/last24h", 200, token=admin)
    models = (js or {}).get("models") if isinstance(js, dict) else None
    row = next((m for m in (models if isinstance(models, list) else [])
                if m.get("provider") == "anthropic" and m.get("model") == MODEL), None)
    j.check(f"tenant last24h lists anthropic/{MODEL} with the member's request",
            row is not None and row.get("requests") == 1 and row.get("success_rate") == 1, text[:300])
    j.expect("globex-admin GET acme's last24h -> 403", "GET", f"{u}/last24h", 403, token=gadmin)

    # The tenant admin deletes the key: the member has none (no registry entry names an
    # operator credential in this journey, so nothing else serves anthropic).
    j.expect("acme-admin DELETE the tenant key -> 204", "DELETE", f"{p}/keys/anthropic", 204, token=admin)
    st, js, text = j.expect("acme-member GET tenant settings after the delete -> 200", "GET", p, 200, token=member)
    j.check("after the delete: hasApiKeys.anthropic false",
            isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is False, text[:300])
    try:
        desc = sm.describe_secret(SecretId=secret_name)
        j.check("tenant secret scheduled for deletion", desc.get("DeletedDate") is not None, str(desc)[:300])
    except ClientError as e:
        gone = e.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
        j.check("tenant secret deleted", gone and secret_existed, str(e))
    # generate may hold the tenant's settings for settings_cache_seconds: wait it out.
    time.sleep(int(ev.vars.get("settings_cache_seconds", 5)) + 1)
    before = len(stub.requests)
    st, js, text = j.expect("acme-member POST /api/llm-generate after the delete -> 400 (no key)", "POST", g, 400,
                            token=member, body=dict(req, prompt="Summarise today's failed logins by source IP."))
    j.check("the 400 says no API key is saved, and no upstream call was made",
            "no API key" in (((js or {}).get("error") or {}).get("message", "") if isinstance(js, dict) else "")
            and len(stub.requests) == before, f"{len(stub.requests) - before} upstream requests: {text[:300]}")
    j.check("the tenant's key appears in no response body", all(tenant_key not in b for b in j.bodies),
            "a response contained the tenant's key")
    return tenant_key
