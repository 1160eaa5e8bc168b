"""The admin part of the emulator deployment journey (called by deploy_local.py): the
model registry the llm-settings function seeded, reordered and toggled through API
Gateway, users' model lists following it, a per-user cap reported by llm-usage, the audit
trail (read through llm-usage, checked in the audit table), and the IAM split: only
llm-settings may write the registry."""
from __future__ import annotations

import json
import time

import boto3
from botocore.exceptions import ClientError


def admin_journey(d, ev, j, alice, ops, sub, key, emulator_policy) -> None:
    catalog_models = d.catalog_models
    p_llms = "/api/admin/llms"
    j.expect("alice GET /api/admin/llms -> 403", "GET", p_llms, 403, token=alice)
    j.expect("GET /api/admin/llms without a token -> 401", "GET", p_llms, 401)
    st, js, text = j.expect("ops GET /api/admin/llms?limit=200 -> 200", "GET", p_llms + "?limit=200", 200, token=ops)
    entries = (js or {}).get("llms", [])
    j.check("the registry was seeded from the catalog", (js or {}).get("total") == catalog_models,
            f"total {(js or {}).get('total')} vs {catalog_models} catalog models")
    by_model = {(e["provider"], e["model_name"]): e for e in entries}
    mini = by_model.get(("openai", "gpt-4.1-mini"))
    if not j.check("the seed holds openai/gpt-4.1-mini", mini is not None):
        return

    # Reorder and disable through the admin routes; users' lists follow at once on this
    # function, and on generate within its window.
    st, js, text = j.expect("ops PUT priority 0 on openai/gpt-4.1-mini -> 200", "PUT", f"{p_llms}/{mini['id']}", 200,
                            token=ops, body={"priority": 0, "version": mini["version"]})
    j.check("PUT answer: priority 0, version + 1", (js or {}).get("priority") == 0
            and (js or {}).get("version") == mini["version"] + 1, text[:300])
    st, js, text = j.expect("alice GET /api/llm-models -> 200", "GET", "/api/llm-models", 200, token=alice)
    first = ((js or {}).get("models") or [{}])[0]
    j.check("alice's model list starts with the reprioritised entry", first.get("llm_id") == mini["id"], str(first)[:300])
    j.expect("ops POST toggle -> 200", "POST", f"{p_llms}/{mini['id']}/toggle", 200, token=ops)
    st, js, text = j.expect("alice GET /api/llm-models after the toggle -> 200", "GET", "/api/llm-models", 200,
                            token=alice)
    ids = [m.get("llm_id") for m in (js or {}).get("models", [])]
    j.check("a disabled entry leaves alice's model list", mini["id"] not in ids and len(ids) == d.chat_models - 1,
            f"{len(ids)} models")
    st, js, text = j.expect("alice PUT a disabled model as a preference -> 400", "PUT", f"/api/llm-settings/{sub}", 400,
                            token=alice, body={"preferences": {"queryModel": "gpt-4.1-mini"}})
    j.check("the 400 names preferences.queryModel",
            "preferences.queryModel" in ((js or {}).get("error") or {}).get("message", ""), text[:300])
    st, js, text = j.expect("ops POST a literal key as auth_meta -> 400", "POST", p_llms, 400, token=ops,
                            body={"name": "leak", "provider": "anthropic", "model_name": "claude-3-5-haiku-20241022",
                                  "auth_meta": {"api_key_secret": key}})
    j.check("the 400 does not echo the key", key not in text, "the key is in the answer")
    j.expect("ops POST toggle back -> 200", "POST", f"{p_llms}/{mini['id']}/toggle", 200, token=ops)

    # A cap under alice's own budget (0.02, set by the generate journey): the effective
    # limit llm-usage reports is the cap.
    p_limits = f"/api/admin/users/{sub}/limits"
    j.expect("alice PUT her own limits -> 403", "PUT", p_limits, 403, token=alice, body={"monthlyBudgetUsd": 1000})
    st, js, text = j.expect("ops PUT alice's limits -> 200", "PUT", p_limits, 200, token=ops,
                            body={"monthlyBudgetUsd": 0.01, "requestsPerMinute": 100})
    j.check("limits answer: version 1", (js or {}).get("version") == 1, text[:300])
    # llm-usage may have read alice's (absent) limits within its window: wait it out.
    time.sleep(int(ev.vars.get("settings_cache_seconds", 5)) + 1)
    st, js, text = j.expect("alice GET budget after the cap -> 200", "GET", f"/api/llm-usage/{sub}/budget", 200,
                            token=alice)
    j.check("budget limit_usd is the cap (0.01), under her own 0.02", (js or {}).get("limit_usd") == 0.01, text[:300])
    limits_table = ev.resources[("aws_dynamodb_table", "settings")]["name"]
    item = d.c("dynamodb").get_item(TableName=limits_table, ConsistentRead=True,
                                    Key={"user_id": {"S": sub}, "setting_type": {"S": "admin_limits"}}).get("Item")
    j.check("the limits item is in the settings table", item is not None, str(item)[:300])

    # The audit trail: through llm-usage, and in the audit table.
    events = []
    path = "/api/admin/audit?limit=20"
    for _ in range(50):
        st, js, text = j.expect("ops GET /api/admin/audit page -> 200", "GET", path, 200, token=ops)
        events += (js or {}).get("events", [])
        nxt = (js or {}).get("nextToken")
        if not nxt:
            break
        path = f"/api/admin/audit?limit=20&nextToken={nxt}"
    j.expect("alice GET /api/admin/audit -> 403", "GET", "/api/admin/audit", 403, token=alice)
    actions = [(e.get("actor"), e.get("action")) for e in events]
    for want in [(sub, "key_set"), (sub, "key_delete"), (sub, "settings_update")]:
        j.check(f"audit holds alice's {want[1]}", want in actions, str(actions)[:300])
    ops_sub = d.ops_sub
    for want in ["llm_update", "llm_disable", "llm_enable", "limits_update"]:
        j.check(f"audit holds ops' {want}", (ops_sub, want) in actions, str(actions)[:300])
    j.check("audit events are newest first",
            all(a["timestamp"] >= b["timestamp"] for a, b in zip(events, events[1:])))
    key_events = [e for e in events if e.get("action") == "key_set"]
    j.check("key_set events carry the hint", bool(key_events) and all(
        (e.get("after") or {}).get("hint", "").startswith("\u2026") for e in key_events), str(key_events)[:300])
    j.check("the key appears in no audit event", key not in json.dumps(events))
    audit_table = ev.resources[("aws_dynamodb_table", "audit")]["name"]
    scan = d.c("dynamodb").scan(TableName=audit_table)["Items"]
    j.check("the key appears in no audit item", key not in json.dumps(scan))
    j.check("every audit item carries a ttl", bool(scan) and all("ttl" in i for i in scan), f"{len(scan)} items")

    # Only llm-settings may write the registry: generate's own permissions, as a probe.
    registry = ev.resources[("aws_dynamodb_table", "registry")]["name"]
    policy = json.loads(ev.resources[("aws_iam_role_policy", "function")]["generate"]["policy"])
    iam = d.c("iam")
    probe_user = "journey-generate-registry-probe"
    iam.create_user(UserName=probe_user)
    iam.put_user_policy(UserName=probe_user, PolicyName="generate-permissions", PolicyDocument=emulator_policy(policy))
    ak = iam.create_access_key(UserName=probe_user)["AccessKey"]
    ddb = boto3.client("dynamodb", endpoint_url=d.endpoint, region_name=d.region,
                       aws_access_key_id=ak["AccessKeyId"], aws_secret_access_key=ak["SecretAccessKey"])
    try:
        ddb.query(TableName=registry, KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": "registry"}}, Limit=1)
        j.check("with the generate permissions: Query on the registry allowed", True)
    except ClientError as e:
        j.check("with the generate permissions: Query on the registry allowed", False, str(e))
    probe = {"pk": {"S": "registry"}, "sk": {"S": "llm#journey-probe"}}
    for op, call in [
        ("PutItem", lambda: ddb.put_item(TableName=registry, Item=probe)),
        ("DeleteItem", lambda: ddb.delete_item(TableName=registry, Key=probe)),
        ("UpdateItem", lambda: ddb.update_item(TableName=registry, Key=probe, UpdateExpression="SET x = :x",
                                               ExpressionAttributeValues={":x": {"N": "1"}})),
    ]:
        try:
            call()
            j.check(f"with the generate permissions: {op} on the registry denied", False, f"{op} succeeded")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            j.check(f"with the generate permissions: {op} on the registry denied", "AccessDenied" in code, str(e))
    d.c("dynamodb").delete_item(TableName=registry, Key=probe)  # in case a write got through
