#!/usr/bin/env python3
"""Create in ministack what infra/*.tf declares, then run the settings, generate, usage,
admin (tools/admin_journey.py) and tenant (tools/tenant_journey.py) journeys through API
Gateway with real Cognito tokens. Run through tools/deploy_local.sh, which starts and
stops ministack.

Everything deployed is read from the .tf files (tools/tfeval.py evaluates them); nothing
about the infrastructure is restated here. Each resource type has a handler that maps
its arguments to the AWS API; an argument a handler does not know is an error, so a new
argument in the .tf gets a decision here instead of being silently dropped.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import secrets
import string
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import tfeval  # noqa: E402
from admin_journey import admin_journey  # noqa: E402
from tenant_journey import tenant_journey  # noqa: E402
from tfeval import EvalError, NotCreated, Unsupported, body_items  # noqa: E402

# Arguments that do not change what ministack runs; named per resource type so that any
# other argument must be handled explicitly.
META = {"for_each", "count", "depends_on", "lifecycle", "provider", "__file__"}


# The streaming REST API (infra/streaming.tf). ministack's REST APIs have neither Cognito
# user-pool authorizers nor response streaming (InvokeWithResponseStream), so the journey
# deploys with streaming_api = false (the generate routes on the HTTP API, as they are then
# on AWS) and tools/check_streaming_tf.py checks these resources from the .tf instead.
STREAMING_API_TYPES = [
    "aws_api_gateway_account", "aws_api_gateway_rest_api", "aws_api_gateway_resource",
    "aws_api_gateway_authorizer", "aws_api_gateway_method", "aws_api_gateway_integration",
    "aws_api_gateway_deployment", "aws_api_gateway_stage", "aws_api_gateway_method_settings",
]


class Deployer:
    def __init__(self, ev: tfeval.Evaluator, endpoint: str, region: str):
        self.ev = ev
        self.endpoint = endpoint
        self.region = region
        cfg = Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60)
        self.c = lambda svc: boto3.client(svc, endpoint_url=endpoint, region_name=region, config=cfg)
        self.account = self.c("sts").get_caller_identity()["Account"]
        ev.data_sources["aws_caller_identity"] = {"account_id": self.account, "id": self.account}
        ev.data_sources["aws_partition"] = {"partition": "aws", "id": "aws"}
        self.created: list[str] = []
        self.ignored: list[str] = []

    # -- helpers
    def v(self, body, name, scope, default=None):
        return self.ev.value(body[name], scope) if name in body else default

    def check_args(self, rtype, body, known, ignored=()):
        for k, _ in body_items(body):
            if k in META:
                continue
            if k not in known and k not in ignored:
                raise Unsupported(f"{rtype}: argument {k!r} is not handled by tools/deploy_local.py")

    def blocks(self, body, name):
        return body.get(name, []) if tfeval.is_block_list(body.get(name)) else []

    def preconditions(self, rtype, rname, body, scope):
        for lc in self.blocks(body, "lifecycle"):
            for pc in self.blocks(lc, "precondition"):
                if self.ev.value(pc["condition"], scope) is not True:
                    raise EvalError(f"{rtype}.{rname}: precondition failed: {self.ev.value(pc['error_message'], scope)}")

    # -- driver
    ORDER = [
        "random_password", "aws_kms_key", "aws_kms_alias", "aws_secretsmanager_secret",
        "aws_secretsmanager_secret_version", "aws_dynamodb_table", "aws_sns_topic", "aws_sns_topic_subscription",
        "aws_cognito_user_pool", "aws_cognito_user_pool_client", "aws_cognito_user_group",
        "aws_cloudwatch_log_group", "aws_iam_role", "aws_iam_role_policy", "aws_lambda_function",
        "aws_apigatewayv2_api", "aws_apigatewayv2_authorizer", "aws_apigatewayv2_integration",
        "aws_apigatewayv2_route", "aws_apigatewayv2_stage", *STREAMING_API_TYPES, "aws_lambda_permission",
        "aws_cloudwatch_metric_alarm",
    ]

    def deploy(self):
        declared = self.ev.module["resource"]
        unknown = {t for t, _ in declared} - set(self.ORDER)
        if unknown:
            raise Unsupported(f"resource types without a handler in deploy_local.py: {sorted(unknown)}")
        for rtype in self.ORDER:
            for (t, name), body in declared.items():
                if t != rtype:
                    continue
                handler = getattr(self, "h_" + rtype)

                def make(scope, body=body, name=name, handler=handler):
                    self.preconditions(rtype, name, body, scope)
                    attrs = handler(body, scope)
                    label = f"{rtype}.{name}" + (f"[{scope['each']['key']!r}]" if "each" in scope else
                                                 f"[{scope['count']['index']}]" if "count" in scope else "")
                    self.created.append(label)
                    return attrs

                self.ev.resources[(rtype, name)] = self.ev.instances(body, make, (rtype, name))

    def __getattr__(self, name):
        # h_aws_api_gateway_*: refused, with the reason (STREAMING_API_TYPES above).
        if name.startswith("h_") and name[2:] in STREAMING_API_TYPES:
            def refuse(b, s, rtype=name[2:]):
                raise Unsupported(f"{rtype}: ministack has no Cognito authorizers or response streaming for REST "
                                  "APIs; deploy with --var streaming_api=false (the default of this script)")
            return refuse
        raise AttributeError(name)

    # -- random (hashicorp/random): generated here, as the provider does, from the OS CSPRNG
    def h_random_password(self, b, s):
        self.check_args("random_password", b, {"length", "special", "upper", "lower", "numeric"})
        length = int(self.v(b, "length", s))
        classes = [(self.v(b, "upper", s, True), string.ascii_uppercase),
                   (self.v(b, "lower", s, True), string.ascii_lowercase),
                   (self.v(b, "numeric", s, True), string.digits),
                   (self.v(b, "special", s, True), "!@#$%&*()-_=+[]{}<>:?")]
        alphabet = "".join(chars for on, chars in classes if on)
        if length < 1 or not alphabet:
            raise EvalError("random_password: length must be >= 1 with at least one character class")
        result = "".join(secrets.choice(alphabet) for _ in range(length))
        self.generated_secrets = getattr(self, "generated_secrets", []) + [result]
        return {"result": result, "id": "none", "length": length}

    # -- Secrets Manager (secrets the .tf itself declares; users' key secrets are the functions')
    def h_aws_secretsmanager_secret(self, b, s):
        self.check_args("aws_secretsmanager_secret", b, {"name", "description", "kms_key_id"},
                        {"recovery_window_in_days"})
        args = {"Name": self.v(b, "name", s), "Description": self.v(b, "description", s, "")}
        if "kms_key_id" in b:
            args["KmsKeyId"] = self.v(b, "kms_key_id", s)
        r = self.c("secretsmanager").create_secret(**args)
        return {"arn": r["ARN"], "id": r["ARN"], "name": r["Name"]}

    def h_aws_secretsmanager_secret_version(self, b, s):
        self.check_args("aws_secretsmanager_secret_version", b, {"secret_id", "secret_string"})
        secret_id = self.v(b, "secret_id", s)
        r = self.c("secretsmanager").put_secret_value(SecretId=secret_id, SecretString=self.v(b, "secret_string", s))
        return {"arn": r["ARN"], "secret_id": secret_id, "version_id": r["VersionId"],
                "id": f"{secret_id}|{r['VersionId']}"}

    # -- KMS
    def h_aws_kms_key(self, b, s):
        self.check_args("aws_kms_key", b, {"description", "enable_key_rotation", "policy"},
                        {"deletion_window_in_days"})
        kms = self.c("kms")
        args = {"Description": self.v(b, "description", s, "")}
        if "policy" in b:
            args["Policy"] = self.v(b, "policy", s)
        meta = kms.create_key(**args)["KeyMetadata"]
        if self.v(b, "enable_key_rotation", s):
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        return {"arn": meta["Arn"], "key_id": meta["KeyId"], "id": meta["KeyId"]}

    def h_aws_kms_alias(self, b, s):
        self.check_args("aws_kms_alias", b, {"name", "target_key_id"})
        name = self.v(b, "name", s)
        self.c("kms").create_alias(AliasName=name, TargetKeyId=self.v(b, "target_key_id", s))
        return {"name": name, "id": name, "arn": f"arn:aws:kms:{self.region}:{self.account}:{name}"}

    # -- DynamoDB
    def h_aws_dynamodb_table(self, b, s):
        self.check_args("aws_dynamodb_table", b, {
            "name", "billing_mode", "hash_key", "range_key", "attribute", "global_secondary_index",
            "ttl", "point_in_time_recovery", "server_side_encryption", "deletion_protection_enabled"})
        ddb = self.c("dynamodb")
        name = self.v(b, "name", s)
        ks = [{"AttributeName": self.v(b, "hash_key", s), "KeyType": "HASH"}]
        if "range_key" in b:
            ks.append({"AttributeName": self.v(b, "range_key", s), "KeyType": "RANGE"})
        attrs = [{"AttributeName": self.v(a, "name", s), "AttributeType": self.v(a, "type", s)}
                 for a in self.blocks(b, "attribute")]
        args = {"TableName": name, "KeySchema": ks, "AttributeDefinitions": attrs,
                "BillingMode": self.v(b, "billing_mode", s, "PROVISIONED")}
        if args["BillingMode"] != "PAY_PER_REQUEST":
            raise Unsupported("aws_dynamodb_table: only PAY_PER_REQUEST is handled")
        gsis = []
        for g in self.blocks(b, "global_secondary_index"):
            self.check_args("global_secondary_index", g, {"name", "hash_key", "range_key", "projection_type"})
            gks = [{"AttributeName": self.v(g, "hash_key", s), "KeyType": "HASH"}]
            if "range_key" in g:
                gks.append({"AttributeName": self.v(g, "range_key", s), "KeyType": "RANGE"})
            gsis.append({"IndexName": self.v(g, "name", s), "KeySchema": gks,
                         "Projection": {"ProjectionType": self.v(g, "projection_type", s)}})
        if gsis:
            args["GlobalSecondaryIndexes"] = gsis
        for sse in self.blocks(b, "server_side_encryption"):
            if self.v(sse, "enabled", s):
                args["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
                if "kms_key_arn" in sse:
                    args["SSESpecification"]["KMSMasterKeyId"] = self.v(sse, "kms_key_arn", s)
        if "deletion_protection_enabled" in b:
            args["DeletionProtectionEnabled"] = bool(self.v(b, "deletion_protection_enabled", s))
        desc = ddb.create_table(**args)["TableDescription"]
        for t in self.blocks(b, "ttl"):
            if self.v(t, "enabled", s):
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "Enabled": True, "AttributeName": self.v(t, "attribute_name", s)})
        for p in self.blocks(b, "point_in_time_recovery"):
            if self.v(p, "enabled", s):
                ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": True})
        return {"name": name, "id": name, "arn": desc["TableArn"]}

    # -- SNS
    def h_aws_sns_topic(self, b, s):
        self.check_args("aws_sns_topic", b, {"name", "display_name", "kms_master_key_id"})
        attrs = {}
        if "display_name" in b:
            attrs["DisplayName"] = self.v(b, "display_name", s)
        if "kms_master_key_id" in b:
            attrs["KmsMasterKeyId"] = self.v(b, "kms_master_key_id", s)
        name = self.v(b, "name", s)
        arn = self.c("sns").create_topic(Name=name, Attributes=attrs)["TopicArn"]
        return {"name": name, "id": arn, "arn": arn}

    def h_aws_sns_topic_subscription(self, b, s):
        self.check_args("aws_sns_topic_subscription", b, {"topic_arn", "protocol", "endpoint"})
        sub = self.c("sns").subscribe(TopicArn=self.v(b, "topic_arn", s), Protocol=self.v(b, "protocol", s),
                                      Endpoint=self.v(b, "endpoint", s), ReturnSubscriptionArn=True)
        return {"id": sub["SubscriptionArn"], "arn": sub["SubscriptionArn"]}

    # -- Cognito
    def h_aws_cognito_user_pool(self, b, s):
        self.check_args("aws_cognito_user_pool", b, {
            "name", "deletion_protection", "mfa_configuration", "software_token_mfa_configuration",
            "admin_create_user_config", "password_policy", "account_recovery_setting", "schema"})
        idp = self.c("cognito-idp")
        args = {"PoolName": self.v(b, "name", s)}
        schema = []
        for a in self.blocks(b, "schema"):
            self.check_args("schema", a, {"name", "attribute_data_type", "mutable", "required",
                                          "developer_only_attribute", "string_attribute_constraints",
                                          "number_attribute_constraints"})
            attr = {"Name": self.v(a, "name", s), "AttributeDataType": self.v(a, "attribute_data_type", s)}
            for tf, api in (("mutable", "Mutable"), ("required", "Required"),
                            ("developer_only_attribute", "DeveloperOnlyAttribute")):
                if tf in a:
                    attr[api] = bool(self.v(a, tf, s))
            # The API takes the bounds as strings, as the provider sends them.
            for blk, api, names in (("string_attribute_constraints", "StringAttributeConstraints",
                                     {"min_length": "MinLength", "max_length": "MaxLength"}),
                                    ("number_attribute_constraints", "NumberAttributeConstraints",
                                     {"min_value": "MinValue", "max_value": "MaxValue"})):
                for c in self.blocks(a, blk):
                    self.check_args(blk, c, set(names))
                    attr[api] = {names[k]: tfeval._tf_string(self.ev.value(v, s)) for k, v in body_items(c)}
            schema.append(attr)
        if schema:
            args["Schema"] = schema
        if "deletion_protection" in b:
            args["DeletionProtection"] = self.v(b, "deletion_protection", s)
        for a in self.blocks(b, "admin_create_user_config"):
            args["AdminCreateUserConfig"] = {"AllowAdminCreateUserOnly": bool(self.v(a, "allow_admin_create_user_only", s))}
        for p in self.blocks(b, "password_policy"):
            names = {"minimum_length": "MinimumLength", "require_lowercase": "RequireLowercase",
                     "require_uppercase": "RequireUppercase", "require_numbers": "RequireNumbers",
                     "require_symbols": "RequireSymbols",
                     "temporary_password_validity_days": "TemporaryPasswordValidityDays"}
            self.check_args("password_policy", p, set(names))
            args["Policies"] = {"PasswordPolicy": {names[k]: self.ev.value(v, s) for k, v in body_items(p)}}
        for r in self.blocks(b, "account_recovery_setting"):
            args["AccountRecoverySetting"] = {"RecoveryMechanisms": [
                {"Name": self.v(m, "name", s), "Priority": self.v(m, "priority", s)}
                for m in self.blocks(r, "recovery_mechanism")]}
        pool = idp.create_user_pool(**args)["UserPool"]
        mfa = self.v(b, "mfa_configuration", s)
        if mfa:
            sw = any(self.v(x, "enabled", s) for x in self.blocks(b, "software_token_mfa_configuration"))
            idp.set_user_pool_mfa_config(UserPoolId=pool["Id"], MfaConfiguration=mfa,
                                         SoftwareTokenMfaConfiguration={"Enabled": sw})
        return {"id": pool["Id"], "arn": pool["Arn"], "name": pool["Name"],
                "endpoint": f"cognito-idp.{self.region}.amazonaws.com/{pool['Id']}"}

    def h_aws_cognito_user_pool_client(self, b, s):
        self.check_args("aws_cognito_user_pool_client", b, {
            "name", "user_pool_id", "generate_secret", "prevent_user_existence_errors",
            "enable_token_revocation", "explicit_auth_flows", "id_token_validity",
            "access_token_validity", "refresh_token_validity", "token_validity_units",
            "read_attributes", "write_attributes"})
        args = {"UserPoolId": self.v(b, "user_pool_id", s), "ClientName": self.v(b, "name", s),
                "GenerateSecret": bool(self.v(b, "generate_secret", s, False)),
                "ExplicitAuthFlows": self.v(b, "explicit_auth_flows", s, [])}
        for tf, api in (("prevent_user_existence_errors", "PreventUserExistenceErrors"),
                        ("enable_token_revocation", "EnableTokenRevocation"),
                        ("id_token_validity", "IdTokenValidity"),
                        ("access_token_validity", "AccessTokenValidity"),
                        ("refresh_token_validity", "RefreshTokenValidity")):
            if tf in b:
                args[api] = self.v(b, tf, s)
        # As the provider does: an empty list is not sent (Cognito then allows every
        # attribute), so the .tf must name the attributes.
        for tf, api in (("read_attributes", "ReadAttributes"), ("write_attributes", "WriteAttributes")):
            if self.v(b, tf, s):
                args[api] = self.v(b, tf, s)
        for u in self.blocks(b, "token_validity_units"):
            args["TokenValidityUnits"] = {
                {"id_token": "IdToken", "access_token": "AccessToken", "refresh_token": "RefreshToken"}[k]:
                    self.ev.value(v, s) for k, v in body_items(u)}
        cl = self.c("cognito-idp").create_user_pool_client(**args)["UserPoolClient"]
        return {"id": cl["ClientId"], "name": cl["ClientName"], "user_pool_id": cl["UserPoolId"]}

    def h_aws_cognito_user_group(self, b, s):
        self.check_args("aws_cognito_user_group", b, {"name", "user_pool_id", "description"})
        g = self.c("cognito-idp").create_group(GroupName=self.v(b, "name", s), UserPoolId=self.v(b, "user_pool_id", s),
                                               Description=self.v(b, "description", s, ""))["Group"]
        return {"name": g["GroupName"], "id": f"{g['UserPoolId']}/{g['GroupName']}"}

    # -- Logs, IAM
    def h_aws_cloudwatch_log_group(self, b, s):
        self.check_args("aws_cloudwatch_log_group", b, {"name", "retention_in_days", "kms_key_id"})
        logs = self.c("logs")
        name = self.v(b, "name", s)
        args = {"logGroupName": name}
        if "kms_key_id" in b:
            args["kmsKeyId"] = self.v(b, "kms_key_id", s)
        logs.create_log_group(**args)
        if "retention_in_days" in b:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(self.v(b, "retention_in_days", s)))
        return {"name": name, "id": name, "arn": f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}"}

    def h_aws_iam_role(self, b, s):
        self.check_args("aws_iam_role", b, {"name", "description", "assume_role_policy"})
        r = self.c("iam").create_role(RoleName=self.v(b, "name", s), Description=self.v(b, "description", s, ""),
                                      AssumeRolePolicyDocument=self.v(b, "assume_role_policy", s))["Role"]
        return {"name": r["RoleName"], "id": r["RoleName"], "arn": r["Arn"]}

    def h_aws_iam_role_policy(self, b, s):
        self.check_args("aws_iam_role_policy", b, {"name", "role", "policy"})
        role, name = self.v(b, "role", s), self.v(b, "name", s)
        policy = self.v(b, "policy", s)
        self.c("iam").put_role_policy(RoleName=role, PolicyName=name,
                                      PolicyDocument=emulator_policy(json.loads(policy)))
        return {"id": f"{role}:{name}", "name": name, "role": role, "policy": policy}

    # -- Lambda
    def h_aws_lambda_function(self, b, s):
        self.check_args("aws_lambda_function", b, {
            "function_name", "description", "role", "runtime", "handler", "architectures", "filename",
            "source_code_hash", "memory_size", "timeout", "reserved_concurrent_executions",
            "tracing_config", "logging_config", "environment"})
        lam = self.c("lambda")
        name = self.v(b, "function_name", s)
        zip_path = self.v(b, "filename", s)
        code = self.ev._read_file(zip_path)
        self.v(b, "source_code_hash", s)  # evaluated so a bad expression fails here too
        env = {}
        for e in self.blocks(b, "environment"):
            env = dict(self.v(e, "variables", s) or {})
        self.tf_env = getattr(self, "tf_env", {})
        self.tf_env[name] = dict(env)
        # The one addition: Rust SDK clients must be pointed at the emulator.
        env["AWS_ENDPOINT_URL"] = self.endpoint
        # Lambda turns logging_config into AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL in
        # the function's process; ministack stores the config but does not, so they are
        # set here, as Lambda would, and kept apart from the .tf environment.
        logging = {}
        self.runtime_env = getattr(self, "runtime_env", {})
        self.runtime_env[name] = {}
        for lc in self.blocks(b, "logging_config"):
            fmt = self.v(lc, "log_format", s, "Text")
            logging = {"LogFormat": fmt}
            self.runtime_env[name]["AWS_LAMBDA_LOG_FORMAT"] = fmt
            level = self.v(lc, "application_log_level", s, None)
            if level is not None:
                logging["ApplicationLogLevel"] = level
                self.runtime_env[name]["AWS_LAMBDA_LOG_LEVEL"] = level
        env.update(self.runtime_env[name])
        args = {
            "FunctionName": name, "Role": self.v(b, "role", s), "Runtime": self.v(b, "runtime", s),
            "Handler": self.v(b, "handler", s), "Architectures": self.v(b, "architectures", s),
            "Code": {"ZipFile": code}, "Description": self.v(b, "description", s, ""),
            "MemorySize": int(self.v(b, "memory_size", s, 128)), "Timeout": int(self.v(b, "timeout", s, 3)),
            "Environment": {"Variables": env},
        }
        for t in self.blocks(b, "tracing_config"):
            args["TracingConfig"] = {"Mode": self.v(t, "mode", s)}
        if logging:
            args["LoggingConfig"] = logging
        fn = lam.create_function(**args)
        rc = self.v(b, "reserved_concurrent_executions", s, -1)
        if rc is not None and rc >= 0:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(rc))
        arn = fn["FunctionArn"]
        return {"function_name": name, "arn": arn, "id": name,
                "invoke_arn": f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{arn}/invocations"}

    def h_aws_lambda_permission(self, b, s):
        self.check_args("aws_lambda_permission", b, {"statement_id", "action", "function_name", "principal", "source_arn"})
        sid = self.v(b, "statement_id", s)
        self.c("lambda").add_permission(FunctionName=self.v(b, "function_name", s), StatementId=sid,
                                        Action=self.v(b, "action", s), Principal=self.v(b, "principal", s),
                                        SourceArn=self.v(b, "source_arn", s))
        return {"id": sid, "statement_id": sid}

    # -- API Gateway v2
    def h_aws_apigatewayv2_api(self, b, s):
        self.check_args("aws_apigatewayv2_api", b, {"name", "description", "protocol_type"})
        api = self.c("apigatewayv2").create_api(Name=self.v(b, "name", s), ProtocolType=self.v(b, "protocol_type", s),
                                                Description=self.v(b, "description", s, ""))
        return {"id": api["ApiId"], "api_endpoint": api.get("ApiEndpoint", ""),
                "execution_arn": f"arn:aws:execute-api:{self.region}:{self.account}:{api['ApiId']}"}

    def h_aws_apigatewayv2_authorizer(self, b, s):
        self.check_args("aws_apigatewayv2_authorizer", b, {
            "name", "api_id", "authorizer_type", "identity_sources", "jwt_configuration"})
        jwt = {}
        for j in self.blocks(b, "jwt_configuration"):
            jwt = {"Issuer": self.v(j, "issuer", s), "Audience": self.v(j, "audience", s)}
        a = self.c("apigatewayv2").create_authorizer(
            ApiId=self.v(b, "api_id", s), Name=self.v(b, "name", s), AuthorizerType=self.v(b, "authorizer_type", s),
            IdentitySource=self.v(b, "identity_sources", s), JwtConfiguration=jwt)
        self.jwt_config = jwt
        return {"id": a["AuthorizerId"]}

    def h_aws_apigatewayv2_integration(self, b, s):
        self.check_args("aws_apigatewayv2_integration", b, {
            "api_id", "integration_type", "integration_method", "integration_uri", "payload_format_version"})
        i = self.c("apigatewayv2").create_integration(
            ApiId=self.v(b, "api_id", s), IntegrationType=self.v(b, "integration_type", s),
            IntegrationMethod=self.v(b, "integration_method", s), IntegrationUri=self.v(b, "integration_uri", s),
            PayloadFormatVersion=self.v(b, "payload_format_version", s))
        return {"id": i["IntegrationId"]}

    def h_aws_apigatewayv2_route(self, b, s):
        self.check_args("aws_apigatewayv2_route", b, {"api_id", "route_key", "target", "authorization_type", "authorizer_id"})
        args = {"ApiId": self.v(b, "api_id", s), "RouteKey": self.v(b, "route_key", s),
                "Target": self.v(b, "target", s), "AuthorizationType": self.v(b, "authorization_type", s, "NONE")}
        if self.v(b, "authorizer_id", s) is not None:
            args["AuthorizerId"] = self.v(b, "authorizer_id", s)
        r = self.c("apigatewayv2").create_route(**args)
        self.routes = getattr(self, "routes", {})
        self.routes[args["RouteKey"]] = args["AuthorizationType"]
        return {"id": r["RouteId"]}

    def h_aws_apigatewayv2_stage(self, b, s):
        self.check_args("aws_apigatewayv2_stage", b, {
            "api_id", "name", "auto_deploy", "default_route_settings", "access_log_settings"})
        args = {"ApiId": self.v(b, "api_id", s), "StageName": self.v(b, "name", s),
                "AutoDeploy": bool(self.v(b, "auto_deploy", s, False))}
        for d in self.blocks(b, "default_route_settings"):
            m = {"throttling_burst_limit": "ThrottlingBurstLimit", "throttling_rate_limit": "ThrottlingRateLimit",
                 "detailed_metrics_enabled": "DetailedMetricsEnabled"}
            self.check_args("default_route_settings", d, set(m))
            args["DefaultRouteSettings"] = {m[k]: self.ev.value(v, s) for k, v in body_items(d)}
        for a in self.blocks(b, "access_log_settings"):
            args["AccessLogSettings"] = {"DestinationArn": self.v(a, "destination_arn", s), "Format": self.v(a, "format", s)}
        st = self.c("apigatewayv2").create_stage(**args)
        return {"id": st["StageName"], "name": st["StageName"]}

    # -- CloudWatch
    def h_aws_cloudwatch_metric_alarm(self, b, s):
        m = {"alarm_name": "AlarmName", "alarm_description": "AlarmDescription", "namespace": "Namespace",
             "metric_name": "MetricName", "statistic": "Statistic", "period": "Period",
             "evaluation_periods": "EvaluationPeriods", "threshold": "Threshold",
             "comparison_operator": "ComparisonOperator", "treat_missing_data": "TreatMissingData",
             "alarm_actions": "AlarmActions", "ok_actions": "OKActions"}
        self.check_args("aws_cloudwatch_metric_alarm", b, set(m) | {"dimensions"})
        args = {api: self.v(b, tf, s) for tf, api in m.items() if tf in b}
        args["Dimensions"] = [{"Name": k, "Value": v} for k, v in (self.v(b, "dimensions", s) or {}).items()]
        self.c("cloudwatch").put_metric_alarm(**args)
        return {"id": args["AlarmName"], "arn": f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{args['AlarmName']}"}


# ======================================================================================
# The journey
# ======================================================================================

class Journey:
    def __init__(self, d: Deployer, base: str):
        self.d = d
        self.base = base
        self.passed = 0
        self.failed = 0
        self.bodies: list[str] = []
        self.log_path: str | None = None

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f" -- {detail}" if detail else ""))
        return ok

    def http(self, method, path, token=None, body=None, raw_auth=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if raw_auth is not None:
            headers["authorization"] = raw_auth
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        self.bodies.append(text)
        try:
            js = json.loads(text) if text else None
        except ValueError:
            js = None
        return status, js, text

    def expect(self, name, method, path, want, token=None, body=None, raw_auth=None):
        status, js, text = self.http(method, path, token, body, raw_auth)
        self.check(name, status == want, f"{method} {path} -> {status} (want {want}): {text[:300]}")
        return status, js, text


# AWS authorizes Bedrock's Converse / ConverseStream as bedrock:InvokeModel /
# bedrock:InvokeModelWithResponseStream; ministack checks an action named after the API
# operation instead. The .tf keeps the real action names; only the copy of the policy
# given to the emulator gets the emulator's names added beside them.
EMULATOR_ACTION_ALIASES = {
    "bedrock:InvokeModel": ["bedrock:Converse"],
    "bedrock:InvokeModelWithResponseStream": ["bedrock:ConverseStream"],
}


def emulator_policy(doc: dict) -> str:
    for st in doc.get("Statement", []):
        actions = st.get("Action")
        if actions is None:
            continue
        actions = [actions] if isinstance(actions, str) else list(actions)
        extra = [a for x in actions for a in EMULATOR_ACTION_ALIASES.get(x, []) if a not in actions]
        if extra:
            st["Action"] = actions + extra
    return json.dumps(doc)


REVOKED_KEY = "sk-ant-api03-REVOKED-0123456789abcdefghijklmnopqrstuvwxyz"


class ProviderStub:
    """A loopback stand-in for the Anthropic API, so POST .../test never leaves the machine.
    The journey points provider_url_overrides.anthropic at it (an operator setting)."""

    def __init__(self):
        self.requests: list[dict] = []
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                stub.requests.append({"method": self.command, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body.decode(errors="replace")})
                if self.headers.get("x-api-key") == REVOKED_KEY:
                    data = json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                                  "message": "invalid x-api-key"}}).encode()
                    self.send_response(401)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if self.command == "GET":
                    out = {"data": [{"type": "model", "id": "claude-3-5-sonnet-20241022",
                                     "display_name": "Claude 3.5 Sonnet", "created_at": "2024-10-22T00:00:00Z"}],
                           "has_more": False, "first_id": "claude-3-5-sonnet-20241022",
                           "last_id": "claude-3-5-sonnet-20241022"}
                else:
                    out = {"id": "msg_stub", "type": "message", "role": "assistant", "model": "claude-3-5-sonnet-20241022",
                           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                           "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def forge_token(real_token):
    """Same header (kid) and claims as a real token, signed by another RSA key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    h, p, _ = real_token.split(".")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sig = key.sign(f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{h}.{p}." + base64.urlsafe_b64encode(sig).decode().rstrip("=")


def run_journey(d: Deployer, ev: tfeval.Evaluator, j: Journey, stub: ProviderStub | None) -> None:
    idp = d.c("cognito-idp")
    api_id = ev.resources[("aws_apigatewayv2_api", "this")]["id"]
    if not ev._local("create_cognito"):
        raise EvalError("the journey needs the module's own Cognito pool (jwt_issuer/jwt_audience empty)")
    pool_id = ev.resources[("aws_cognito_user_pool", "this")][0]["id"]
    client_id = ev.resources[("aws_cognito_user_pool_client", "this")][0]["id"]
    admin_group = ev.resources[("aws_cognito_user_group", "admin")][0]["name"]
    secret_prefix = ev.vars["secret_prefix"]
    fn_name = ev.resources[("aws_lambda_function", "this")]["llm-settings"]["function_name"]
    table = ev.resources[("aws_dynamodb_table", "settings")]["name"]
    cmk_arn = ev.resources[("aws_kms_key", "this")]["arn"]
    password = "Journey-Passw0rd-" + uuid.uuid4().hex[:8]

    def user(name, admin=False):
        idp.admin_create_user(UserPoolId=pool_id, Username=name, TemporaryPassword=password + "t",
                              MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=password, Permanent=True)
        if admin:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName=admin_group)
        tok = idp.admin_initiate_auth(UserPoolId=pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                      AuthParameters={"USERNAME": name, "PASSWORD": password}
                                      )["AuthenticationResult"]["IdToken"]
        return tok, b64url_json(tok.split(".")[1])

    alice, alice_claims = user("alice")
    bob, _ = user("bob")
    ops, ops_claims = user("ops", admin=True)
    sub = alice_claims["sub"]
    print(f"# api {api_id}, pool {pool_id}, client {client_id}, alice sub {sub}")

    # Deployed as declared
    cfg = d.c("lambda").get_function_configuration(FunctionName=fn_name)
    got_env = cfg.get("Environment", {}).get("Variables", {})
    want_env = dict(d.tf_env[fn_name], **d.runtime_env[fn_name], AWS_ENDPOINT_URL=d.endpoint)
    j.check("lambda environment is exactly the .tf environment + logging_config's + AWS_ENDPOINT_URL",
            got_env == want_env,
            f"got {got_env}, want {want_env}")
    j.check("authorizer issuer is the pool's token issuer", alice_claims.get("iss") == d.jwt_config["Issuer"],
            f"token iss {alice_claims.get('iss')} vs authorizer {d.jwt_config['Issuer']}")
    j.check("ops token carries the admin group claim", admin_group in (ops_claims.get("cognito:groups") or []),
            str(ops_claims.get("cognito:groups")))

    # Authentication at the gateway
    j.expect("GET /health without a token -> 200", "GET", "/health", 200)
    # The dashboard: public pages from llm-settings, the caller from the JWT's claims.
    st, _, page = j.expect("GET / (the dashboard) without a token -> 200", "GET", "/", 200)
    j.check("the dashboard page loads its script from this origin", '<script type="module" src="/assets/app.js">' in page,
            page[:200])
    st, _, script = j.expect("GET /assets/app.js without a token -> 200", "GET", "/assets/app.js", 200)
    j.check("the dashboard script arrives as text", "import" in script, script[:120])
    j.expect("GET /assets/missing.js -> 404", "GET", "/assets/missing.js", 404)
    st, js, _ = j.expect("GET /openapi.json without a token -> 200", "GET", "/openapi.json", 200)
    j.check("the OpenAPI document is 3.1 and lists the settings routes",
            isinstance(js, dict) and js.get("openapi") == "3.1.0" and "/api/llm-settings/{userId}" in js.get("paths", {}),
            str(js)[:200])
    j.expect("GET /api/me without a token -> 401", "GET", "/api/me", 401)
    st, js, _ = j.expect("alice GET /api/me -> 200", "GET", "/api/me", 200, token=alice)
    j.check("/api/me names alice by her sub, not an admin",
            isinstance(js, dict) and js.get("userId") == sub and js.get("admin") is False, str(js))
    st, js, _ = j.expect("ops GET /api/me -> 200", "GET", "/api/me", 200, token=ops)
    j.check("/api/me says ops is an admin", isinstance(js, dict) and js.get("admin") is True, str(js))
    p = f"/api/llm-settings/{sub}"
    j.expect("GET settings without a token -> 401", "GET", p, 401)
    j.expect("GET settings with a garbage token -> 401", "GET", p, 401, raw_auth="Bearer not.a.jwt")
    j.expect("GET settings with a token signed by another key -> 401", "GET", p, 401, token=forge_token(alice))
    # A second app client of the same pool (test fixture, not in the .tf): valid
    # signature and issuer, wrong audience.
    other = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="journey-other-audience",
                                        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    other_tok = idp.admin_initiate_auth(UserPoolId=pool_id, ClientId=other, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                        AuthParameters={"USERNAME": "alice", "PASSWORD": password}
                                        )["AuthenticationResult"]["IdToken"]
    j.expect("GET settings with a token for another audience -> 401", "GET", p, 401, token=other_tok)

    # Own settings
    st, js, _ = j.expect("alice GET own settings -> 200", "GET", p, 200, token=alice)
    j.check("defaults: hasApiKeys.anthropic false, preferences present",
            isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is False and "preferences" in js,
            json.dumps(js)[:300])
    j.expect("alice GET /api/llm-models -> 200", "GET", "/api/llm-models", 200, token=alice)

    key = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 3 + "Q9Zk"
    st, js, _ = j.expect("alice PUT own key and maxTokens -> 200", "PUT", p, 200, token=alice,
                         body={"preferences": {"maxTokens": 1024}, "apiKeys": {"anthropic": key}})
    ok = isinstance(js, dict)
    j.check("PUT answer: hasApiKeys.anthropic true", ok and js.get("hasApiKeys", {}).get("anthropic") is True, str(js)[:300])
    j.check("PUT answer: keyHints.anthropic is …Q9Zk", ok and js.get("keyHints", {}).get("anthropic") == "\u2026Q9Zk",
            str(js.get("keyHints") if ok else js))
    j.check("PUT answer: preferences.maxTokens 1024", ok and js.get("preferences", {}).get("maxTokens") == 1024,
            str(js)[:300])

    if stub is not None:
        st, js, text = j.expect("alice POST /test (anthropic, unsaved key, stub upstream) -> 200", "POST", f"{p}/test", 200,
                                token=alice, body={"provider": "anthropic", "apiKey": key})
        j.check("test answer: success true", isinstance(js, dict) and js.get("success") is True, text[:300])
        j.check("the stub upstream got the key", any(key in json.dumps(r["headers"]) for r in stub.requests),
                f"{len(stub.requests)} upstream requests: {[r['method'] + ' ' + r['path'] for r in stub.requests]}")
        st, js, text = j.expect("alice POST /test (anthropic, revoked key) -> 200", "POST", f"{p}/test", 200,
                                token=alice, body={"provider": "anthropic", "apiKey": REVOKED_KEY})
        j.check("revoked key: success false, error invalid_key",
                isinstance(js, dict) and js.get("success") is False and js.get("error") == "invalid_key", text[:300])
        # Bedrock with no saved pair: the function's own role, against the emulator's Converse.
        st, js, text = j.expect("alice POST /test (bedrock, function role, emulator Converse) -> 200", "POST",
                                f"{p}/test", 200, token=alice, body={"provider": "bedrock"})
        j.check("bedrock test: success true", isinstance(js, dict) and js.get("success") is True, text[:300])
        j.expect("bob POST /test on alice -> 403", "POST", f"{p}/test", 403, token=bob, body={"provider": "anthropic"})
    j.expect("bob GET alice -> 403", "GET", p, 403, token=bob)
    j.expect("bob PUT alice -> 403", "PUT", p, 403, token=bob, body={"preferences": {"maxTokens": 5}})
    st, js, _ = j.expect("ops (admin) GET alice -> 200", "GET", p, 200, token=ops)
    j.check("admin sees only the hint", isinstance(js, dict) and js.get("keyHints", {}).get("anthropic") == "\u2026Q9Zk"
            and key not in json.dumps(js), str(js)[:300])

    st, js, text = j.expect("PUT a bad field -> 400", "PUT", p, 400, token=alice, body={"preferences": {"maxTokens": "x"}})
    msg = (js or {}).get("error", {}).get("message", "") if isinstance(js, dict) else ""
    j.check("400 message starts with preferences.maxTokens", msg.startswith("preferences.maxTokens"), text[:300])

    # What landed in AWS
    sm = d.c("secretsmanager")
    secret_existed = False
    secret_name = f"{secret_prefix}users/{sub}/llm/anthropic"
    try:
        desc = sm.describe_secret(SecretId=secret_name)
        j.check("secret exists under <prefix>users/<sub>/llm/anthropic", True)
        secret_existed = True
        j.check("secret KmsKeyId is the CMK from the .tf", desc.get("KmsKeyId") in (cmk_arn, cmk_arn.split("/")[-1]),
                f"{desc.get('KmsKeyId')} vs {cmk_arn}")
        tags = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
        j.check("secret tagged user_id=<sub>", tags.get("user_id") == sub, str(tags))
        # The settings item names the secret version that holds the key (the settings
        # write is the commit point of a rotation); read exactly that one.
        named = d.c("dynamodb").get_item(
            TableName=table, Key={"user_id": {"S": sub}, "setting_type": {"S": "llm_preferences"}},
            ConsistentRead=True).get("Item", {})
        version = named.get("keys", {}).get("M", {}).get("anthropic", {}).get("M", {}).get("version", {}).get("S")
        j.check("settings item names the key's secret version", bool(version), str(named.get("keys"))[:300])
        got = sm.get_secret_value(SecretId=secret_name, VersionId=version) if version else {}
        j.check("secret value of that version is the key", got.get("SecretString") == key, "value differs")
    except ClientError as e:
        j.check("secret exists and is readable under <prefix>users/<sub>/llm/anthropic", False, f"{secret_name}: {e}")
    item = d.c("dynamodb").get_item(TableName=table, Key={"user_id": {"S": sub}, "setting_type": {"S": "llm_preferences"}}).get("Item")
    j.check("settings item (user_id, setting_type=llm_preferences) exists", item is not None)
    j.check("settings item does not contain the key", item is not None and key not in json.dumps(item))

    # Delete the key
    j.expect("DELETE key -> 204", "DELETE", f"{p}/keys/anthropic", 204, token=alice)
    st, js, _ = j.expect("GET after delete -> 200", "GET", p, 200, token=alice)
    j.check("after delete: hasApiKeys.anthropic false", isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is False,
            str(js)[:300])
    try:
        desc = sm.describe_secret(SecretId=secret_name)
        j.check("secret scheduled for deletion", desc.get("DeletedDate") is not None, str(desc)[:300])
    except ClientError as e:
        gone = e.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
        j.check("secret deleted", gone and secret_existed, f"it never existed / {e}")

    # Saving a key again for the same provider (the secret is pending deletion)
    st, js, _ = j.expect("alice PUT the key again after delete -> 200", "PUT", p, 200, token=alice,
                         body={"apiKeys": {"anthropic": key}})
    j.check("after re-save: hasApiKeys.anthropic true", isinstance(js, dict) and js.get("hasApiKeys", {}).get("anthropic") is True,
            str(js)[:300])

    request_ids = generate_journey(d, ev, j, stub, alice, bob, sub, key)
    usage_journey(d, ev, j, alice, bob, ops, sub, request_ids)
    d.ops_sub = ops_claims["sub"]
    catalog = Path(__file__).resolve().parent.parent / "shared" / "src" / "pricing" / "catalog.toml"
    models = tomllib.loads(catalog.read_text())["model"]
    d.catalog_models = len(models)
    # Embedding models are seeded but never listed for chat (GET /api/llm-models).
    d.chat_models = sum(1 for m in models if "embeddings" not in m.get("capabilities", []))
    admin_journey(d, ev, j, alice, ops, sub, key, emulator_policy)
    tenant_key = tenant_journey(d, ev, j, stub, ops, b64url_json, emulator_policy)
    # Every saved key: alice's, and the tenant's when the tenant journey ran.
    hidden = [("the key", key)] + ([("the tenant's key", tenant_key)] if tenant_key else [])

    j.check("the key appears in no response body", all(key not in b for b in j.bodies),
            "a response contained the key")
    token_keys = getattr(d, "generated_secrets", [])
    j.check("the page-token key appears in no response body",
            bool(token_keys) and all(t not in b for t in token_keys for b in j.bodies))
    # The functions' own output, as ministack stores it: CloudWatch Logs, in the log
    # groups the .tf declares.
    time.sleep(1.0)  # let the last lines be forwarded
    logs = d.c("logs")
    for fn in ("llm-settings", "generate", "llm-usage"):
        group = ev.resources[("aws_cloudwatch_log_group", "lambda")][fn]["name"]
        lines = []
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
            lines += [e["message"] for e in page.get("events", [])]
        app_lines = [ln for ln in lines if ln.lstrip().startswith("{")]
        print(f"# {group}: {len(lines)} lines, {len(app_lines)} JSON; last: {(app_lines or [''])[-1][:300]}")
        j.check(f"the function logged JSON lines to {group}", bool(app_lines), f"{len(lines)} lines, none JSON")
        for what, k in hidden:
            j.check(f"{what} appears in no {fn} log line", all(k not in ln for ln in lines),
                    next((ln[:200] for ln in lines if k in ln), ""))
        j.check(f"the page-token key appears in no {fn} log line",
                all(t not in ln for t in token_keys for ln in lines))
    if j.log_path:
        text = Path(j.log_path).read_text(errors="replace")
        for what, k in hidden:
            j.check(f"{what} appears in no ministack log line", k not in text)
        j.check("the page-token key appears in no ministack log line", all(t not in text for t in token_keys))


def sqs_drain(sqs, url, wait=0):
    """Every message on the queue now (long-polls `wait` s for the first), deleted once read."""
    out = []
    while True:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait if not out else 0,
                                MessageAttributeNames=["All"])
        msgs = r.get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def alert_messages(msgs):
    """The budget alerts among SNS-to-SQS envelopes: (subject, alert dict)."""
    found = []
    for m in msgs:
        try:
            env = json.loads(m["Body"])
            inner = json.loads(env.get("Message", "{}"))
        except (ValueError, TypeError, AttributeError):
            continue
        if isinstance(inner, dict) and inner.get("type") == "budget_alert":
            found.append((env.get("Subject"), inner.get("alert") or {}))
    return found


def nanos(dollars) -> int:
    """A DynamoDB number of dollars (text) as integer nano-USD, exactly."""
    from decimal import Decimal
    return int((Decimal(str(dollars)) * 1_000_000_000).to_integral_value())


def generate_journey(d: Deployer, ev: tfeval.Evaluator, j: Journey, stub, alice, bob, sub, key) -> list[str]:
    """The generate function: Bedrock (function role, emulator Converse) with usage, rollup,
    budget and an SNS alert; the OpenAI-compatible route on the Anthropic stub; ownership.
    Returns the request ids of alice's successful generations (each has a usage record)."""
    request_ids: list[str] = []
    fn_name = ev.resources[("aws_lambda_function", "this")]["generate"]["function_name"]
    cfg = d.c("lambda").get_function_configuration(FunctionName=fn_name)
    got_env = cfg.get("Environment", {}).get("Variables", {})
    want_env = dict(d.tf_env[fn_name], **d.runtime_env[fn_name], AWS_ENDPOINT_URL=d.endpoint)
    j.check("generate environment is exactly the .tf environment + logging_config's + AWS_ENDPOINT_URL",
            got_env == want_env,
            f"got {got_env}, want {want_env}")
    topic_arn = ev.resources[("aws_sns_topic", "budget_alerts")]["arn"]
    j.check("generate BUDGET_ALERT_TOPIC_ARN is the .tf topic", got_env.get("BUDGET_ALERT_TOPIC_ARN") == topic_arn,
            f"{got_env.get('BUDGET_ALERT_TOPIC_ARN')} vs {topic_arn}")
    attrs = d.c("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    cmk_arn = ev.resources[("aws_kms_key", "this")]["arn"]
    j.check("alert topic is encrypted with the CMK", attrs.get("KmsMasterKeyId") in (cmk_arn, cmk_arn.split("/")[-1]),
            str(attrs.get("KmsMasterKeyId")))

    # Test fixture, not in the .tf: an SQS queue subscribed to the topic, to read alerts.
    sqs = d.c("sqs")
    qurl = sqs.create_queue(QueueName="journey-budget-alerts")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=qurl, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": qarn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]})})
    d.c("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=qarn)

    p = f"/api/llm-settings/{sub}"
    # Budget $0.02, threshold 1% = $0.0002; maxTokens 100 keeps each reservation
    # (prompt estimate + 100 output tokens at $15/M = ~$0.002) well under the budget, and
    # one Bedrock answer to the ~100-token prompt below (~$0.0003 input + output) crosses 1%.
    prefs = {"defaultProvider": "bedrock", "fallbackProviders": ["anthropic"], "monthlyBudgetUsd": 0.02,
             "alertThresholds": [1], "maxTokens": 100}
    st, js, text = j.expect("alice PUT bedrock default, budget $0.02, threshold 1% -> 200", "PUT", p, 200,
                            token=alice, body={"preferences": prefs})
    prompt = ("List the five most recent failed console logins from CloudTrail, grouped by source IP address, "
              "with the user name, the time of the first and of the last attempt, and the number of attempts. "
              "Explain briefly how to tell a password spraying attack from a single forgetful user.")
    g = f"/api/llm-generate/{sub}"
    st, js, text = j.expect("alice POST /api/llm-generate (bedrock, function role, emulator Converse) -> 200",
                            "POST", g, 200, token=alice, body={"prompt": prompt})
    ok = isinstance(js, dict)
    usage = (js or {}).get("usage") or {} if ok else {}
    j.check("generate answer: content, provider bedrock",
            ok and bool(js.get("content")) and js.get("provider") == "bedrock", text[:400])
    cost = usage.get("cost_usd")
    j.check("generate answer: usage with a positive cost", isinstance(cost, (int, float)) and cost > 0, text[:400])
    request_id = js.get("requestId") if ok else None
    if request_id:
        request_ids.append(request_id)
    print(f"# generate: requestId {request_id}, model {js.get('model') if ok else None}, usage {usage}")

    ddb = d.c("dynamodb")
    usage_table = ev.resources[("aws_dynamodb_table", "usage")]["name"]
    entries = []
    q = {"TableName": usage_table, "KeyConditionExpression": "user_id = :u AND sk BETWEEN :lo AND :hi",
         "FilterExpression": "request_id = :r", "ConsistentRead": True,
         "ExpressionAttributeValues": {":u": {"S": sub}, ":lo": {"S": "0"}, ":hi": {"S": "9~"},
                                       ":r": {"S": str(request_id)}}}
    for page in ddb.get_paginator("query").paginate(**q):
        entries += page.get("Items", [])
    j.check("usage entry with that requestId exists (Query on the user's partition)", len(entries) == 1,
            f"{len(entries)} entries")
    entry_nanos = None
    if entries:
        e = entries[0]
        entry_nanos = nanos(e["cost_usd"]["N"]) if "N" in e.get("cost_usd", {}) else None
        j.check("usage entry: provider bedrock, status success, positive cost",
                e.get("provider", {}).get("S") == "bedrock" and e.get("status", {}).get("S") == "success"
                and (entry_nanos or 0) > 0, json.dumps(e)[:400])
        day = e["timestamp"]["S"][:10]
        month = e["timestamp"]["S"][:7]
        rollup = ddb.get_item(TableName=usage_table, ConsistentRead=True,
                              Key={"user_id": {"S": sub}, "sk": {"S": f"rollup#{day}"}}).get("Item")
        j.check(f"daily rollup rollup#{day} exists with the entry's cost",
                rollup is not None and int(rollup.get("all|cost_nanos", {}).get("N", "-1")) == entry_nanos,
                json.dumps(rollup)[:400])
        budget = ddb.get_item(TableName=usage_table, ConsistentRead=True,
                              Key={"user_id": {"S": sub}, "sk": {"S": f"budget#{month}"}}).get("Item") or {}
        spent = int(budget.get("spent", {}).get("N", "-1"))
        reserved = int(budget.get("reserved", {}).get("N", "0"))
        j.check("budget spent == the entry's cost in nano-USD, nothing left reserved",
                spent == entry_nanos and reserved == 0, f"spent {spent}, reserved {reserved}, entry {entry_nanos}")

    msgs = sqs_drain(sqs, qurl, wait=5)
    alerts = alert_messages(msgs)
    j.check("one budget alert for threshold 1 arrived on the SQS queue (via the SNS topic)",
            len(alerts) == 1 and alerts[0][1].get("threshold") == 1 and alerts[0][1].get("user_id") == sub
            and bool(alerts[0][0]), f"{len(msgs)} messages: {[m['Body'][:300] for m in msgs]}")

    st, js, text = j.expect("alice POST /api/llm-generate again -> 200", "POST", g, 200, token=alice,
                            body={"prompt": prompt + " Answer in one paragraph."})
    if isinstance(js, dict) and js.get("requestId"):
        request_ids.append(js["requestId"])
    time.sleep(1.0)
    msgs = sqs_drain(sqs, qurl, wait=2)
    j.check("no second alert for threshold 1 after the second request", not alert_messages(msgs),
            f"{[m['Body'][:300] for m in msgs]}")

    if stub is not None:
        before = len(stub.requests)
        st, js, text = j.expect("alice POST /v1/chat/completions anthropic/claude-3-5-sonnet-20241022 (stub) -> 200",
                                "POST", "/v1/chat/completions", 200, token=alice,
                                body={"model": "anthropic/claude-3-5-sonnet-20241022",
                                      "messages": [{"role": "user", "content": "Say ok."}]})
        ok = isinstance(js, dict)
        choices = (js or {}).get("choices") if ok else None
        if st == 200 and ok and str(js.get("id", "")).startswith("chatcmpl-"):
            # The completion id is "chatcmpl-" + the request id without its "req-" prefix.
            suffix = js["id"][len("chatcmpl-"):]
            request_ids.append(("req-" if request_ids and request_ids[0].startswith("req-") else "") + suffix)
        j.check("chat completion in OpenAI's format (object, choices[0].message.content, usage)",
                ok and js.get("object") == "chat.completion" and isinstance(choices, list) and choices
                and choices[0].get("message", {}).get("content") == "ok"
                and isinstance(js.get("usage"), dict) and "total_tokens" in js["usage"], text[:400])
        j.check("the stub upstream got alice's saved key on the completion",
                any(key in json.dumps(r["headers"]) for r in stub.requests[before:]),
                f"{len(stub.requests) - before} upstream requests")
    st, js, text = j.expect("alice GET /v1/models -> 200", "GET", "/v1/models", 200, token=alice)
    j.check("models list in OpenAI's format", isinstance(js, dict) and js.get("object") == "list"
            and isinstance(js.get("data"), list) and bool(js["data"]), text[:300])
    j.expect("POST /api/llm-generate without a token -> 401", "POST", g, 401, body={"prompt": "hi"})
    j.expect("bob POST /api/llm-generate on alice -> 403", "POST", g, 403, token=bob, body={"prompt": "hi"})
    return request_ids


def usage_journey(d: Deployer, ev: tfeval.Evaluator, j: Journey, alice, bob, ops, sub,
                  request_ids: list[str]) -> None:
    """The llm-usage function, on what generate_journey recorded for alice: entries,
    summary, daily trend, budget, signed page tokens, export, the admin summary through the
    ProviderIndex GSI, ownership, and a role that cannot write."""
    from decimal import Decimal
    from urllib.parse import quote

    def dec(text):
        try:
            return json.loads(text, parse_float=Decimal) if text else None
        except ValueError:
            return None

    def expect(name, path, want, token):
        st, _, text = j.expect(name, "GET", path, want, token=token)
        return st, dec(text), text

    def n(v):
        return None if v is None else nanos(v)

    fn_name = ev.resources[("aws_lambda_function", "this")]["llm-usage"]["function_name"]
    cfg = d.c("lambda").get_function_configuration(FunctionName=fn_name)
    got_env = cfg.get("Environment", {}).get("Variables", {})
    want_env = dict(d.tf_env[fn_name], **d.runtime_env[fn_name], AWS_ENDPOINT_URL=d.endpoint)
    j.check("llm-usage environment is exactly the .tf environment + logging_config's + AWS_ENDPOINT_URL",
            got_env == want_env,
            f"got {got_env}, want {want_env}")
    j.check("llm-usage: 128 MB, timeout 15 s", cfg.get("MemorySize") == 128 and cfg.get("Timeout") == 15,
            f"{cfg.get('MemorySize')} MB, {cfg.get('Timeout')} s")
    secret_arn = ev.resources[("aws_secretsmanager_secret", "usage_token_key")]["arn"]
    cmk_arn = ev.resources[("aws_kms_key", "this")]["arn"]
    desc = d.c("secretsmanager").describe_secret(SecretId=secret_arn)
    j.check("page-token key secret is encrypted with the CMK",
            desc.get("KmsKeyId") in (cmk_arn, cmk_arn.split("/")[-1]), str(desc.get("KmsKeyId")))
    j.check("llm-usage reads the page-token key from the .tf secret",
            got_env.get("USAGE_TOKEN_KEY_SECRET_ARN") == secret_arn, str(got_env.get("USAGE_TOKEN_KEY_SECRET_ARN")))
    j.check("generate recorded alice's requests (request ids to look for)", len(request_ids) >= 2, str(request_ids))

    base = f"/api/llm-usage/{sub}"
    st, js, text = expect("alice GET /api/llm-usage/<sub> -> 200", f"{base}?limit=500", 200, alice)
    entries = (js or {}).get("entries") if isinstance(js, dict) else None
    entries = entries if isinstance(entries, list) else []
    got_ids = [e.get("request_id") for e in entries]
    j.check("entries: exactly the request ids generate returned", sorted(got_ids) == sorted(request_ids),
            f"got {got_ids}, want {request_ids}")
    keys = [(e.get("timestamp", ""), e.get("request_id", "")) for e in entries]
    j.check("entries: newest first", keys == sorted(keys, reverse=True), str(keys))
    j.check("entries: nextToken null when everything fits", isinstance(js, dict) and js.get("nextToken") is None,
            text[:200])
    sum_req = len(entries)
    sum_tok = sum(int(e.get("total_tokens") or 0) for e in entries)
    sum_cost = sum(n(e.get("cost_usd")) or 0 for e in entries)
    print(f"# llm-usage: {sum_req} entries, {sum_tok} tokens, {sum_cost} nano-USD")

    st, js, text = expect("alice GET /summary -> 200", f"{base}/summary", 200, alice)
    ok = isinstance(js, dict)
    j.check("summary totals == the sum over the entries (requests, tokens, cost to the nano-dollar)",
            ok and js.get("total_requests") == sum_req and js.get("total_tokens") == sum_tok
            and n(js.get("total_cost_usd")) == sum_cost,
            f"summary {ok and (js.get('total_requests'), js.get('total_tokens'), js.get('total_cost_usd'))} vs "
            f"({sum_req}, {sum_tok}, {sum_cost} nanos)")
    by_provider = (js or {}).get("by_provider", {}) if ok else {}
    want_by_provider = {}
    for e in entries:
        w = want_by_provider.setdefault(e.get("provider"), [0, 0])
        w[0] += 1
        w[1] += n(e.get("cost_usd")) or 0
    j.check("summary by_provider matches the entries",
            {p: [v.get("requests"), n(v.get("cost_usd"))] for p, v in by_provider.items()} == want_by_provider,
            f"{by_provider} vs {want_by_provider}")

    st, js, text = expect("alice GET /daily?days=7 -> 200", f"{base}/daily?days=7", 200, alice)
    days = (js or {}).get("days") if isinstance(js, dict) else None
    days = days if isinstance(days, list) else []
    today = time.strftime("%Y-%m-%d", time.gmtime())
    row = next((r for r in days if r.get("date") == today), None)
    j.check("daily: 7 rows", len(days) == 7, f"{len(days)} rows")
    j.check(f"daily: today's row ({today}) == the entries' requests, tokens, cost",
            row is not None and row.get("requests") == sum_req and row.get("tokens") == sum_tok
            and n(row.get("cost_usd")) == sum_cost, f"{row} vs ({sum_req}, {sum_tok}, {sum_cost} nanos)")

    st, js, text = expect("alice GET /budget -> 200", f"{base}/budget", 200, alice)
    ok = isinstance(js, dict)
    j.check("budget: spent == the sum of the entries' costs, nothing reserved",
            ok and n(js.get("spent_usd")) == sum_cost and n(js.get("reserved_usd")) == 0, text[:300])
    j.check("budget: limit_usd is alice's budget ($0.02)", ok and n(js.get("limit_usd")) == nanos("0.02"), text[:300])
    j.check("budget: month is the current month", ok and js.get("month") == today[:7], text[:300])

    # Signed page tokens: a token continues the same query, and only that query.
    st, js, text = expect("alice GET ?limit=1 -> 200", f"{base}?limit=1", 200, alice)
    first = (js or {}).get("entries") if isinstance(js, dict) else None
    tok = (js or {}).get("nextToken") if isinstance(js, dict) else None
    j.check("limit=1: the newest entry and a nextToken",
            isinstance(first, list) and len(first) == 1 and bool(entries)
            and first[0].get("request_id") == entries[0].get("request_id") and isinstance(tok, str), text[:300])
    if isinstance(tok, str):
        st, js, text = expect("alice GET ?limit=1&nextToken=<token> -> 200", f"{base}?limit=1&nextToken={quote(tok)}",
                              200, alice)
        second = (js or {}).get("entries") if isinstance(js, dict) else None
        j.check("the token continues with the second-newest entry",
                isinstance(second, list) and len(second) == 1 and len(entries) > 1
                and second[0].get("request_id") == entries[1].get("request_id"), text[:300])
        j.expect("the token with another filter (provider=bedrock) -> 400", "GET",
                 f"{base}?limit=1&provider=bedrock&nextToken={quote(tok)}", 400, token=alice)
        j.expect("an edited token -> 400", "GET", f"{base}?limit=1&nextToken={quote('x' + tok)}", 400, token=alice)

    st, _, text = j.expect("alice GET /export?format=csv -> 200", "GET", f"{base}/export?format=csv", 200,
                           token=alice)
    lines = [ln for ln in text.split("\r\n") if ln]
    j.check("export csv: a header plus one row per entry",
            bool(lines) and lines[0].startswith("user_id,timestamp,request_id,") and len(lines) == 1 + sum_req
            and all(any(rid in ln for ln in lines[1:]) for rid in request_ids),
            f"{len(lines)} lines for {sum_req} entries: {text[:300]}")

    # Ownership and the admin view.
    j.expect("GET /api/llm-usage/<sub> without a token -> 401", "GET", base, 401)
    j.expect("bob GET alice's usage -> 403", "GET", base, 403, token=bob)
    j.expect("bob GET alice's summary -> 403", "GET", f"{base}/summary", 403, token=bob)
    j.expect("alice GET /api/admin/usage/summary -> 403", "GET", "/api/admin/usage/summary", 403, token=alice)
    st, js, text = expect("ops (admin) GET /api/admin/usage/summary?provider=bedrock -> 200",
                          "/api/admin/usage/summary?provider=bedrock", 200, ops)
    bedrock = [e for e in entries if e.get("provider") == "bedrock"]
    mine = ((js or {}).get("by_user") or {}).get(sub) if isinstance(js, dict) else None
    j.check("admin summary (ProviderIndex): alice's bedrock requests and cost under by_user",
            isinstance(mine, dict) and bool(bedrock) and mine.get("requests") == len(bedrock)
            and n(mine.get("cost_usd")) == sum(n(e.get("cost_usd")) or 0 for e in bedrock),
            f"by_user[{sub}] = {mine}, {len(bedrock)} bedrock entries: {text[:300]}")
    # Provider health: counted by generate after each usage transaction (sharded counter
    # items in the usage table), read by llm-usage from those items alone.
    j.expect("alice GET /api/admin/providers/health -> 403", "GET", "/api/admin/providers/health", 403,
             token=alice)
    st, js, text = expect("ops (admin) GET /api/admin/providers/health -> 200", "/api/admin/providers/health",
                          200, ops)
    windows = (js or {}).get("windows") if isinstance(js, dict) else None
    day = ((((windows or {}).get("24h") or {}).get("providers") or {}).get("bedrock")) or {}
    j.check("provider health: the 24h window counts every bedrock request alice made",
            bool(bedrock) and day.get("requests") == len(bedrock)
            and day.get("success_rate") is not None and day.get("latency_p50_ms") is not None,
            f"24h bedrock = {day}, {len(bedrock)} bedrock entries: {text[:300]}")

    # Read-only role: no write action in its policy, and a write with its credentials is denied.
    policy = json.loads(ev.resources[("aws_iam_role_policy", "function")]["llm-usage"]["policy"])
    actions = sorted({a for st_ in policy["Statement"]
                      for a in ([st_["Action"]] if isinstance(st_["Action"], str) else st_["Action"])})
    allowed = {"dynamodb:GetItem", "dynamodb:Query", "secretsmanager:GetSecretValue", "kms:Decrypt"}
    j.check("llm-usage policy: only GetItem, Query, GetSecretValue, kms:Decrypt", set(actions) <= allowed, str(actions))
    role_arn = ev.resources[("aws_iam_role", "lambda")]["llm-usage"]["arn"]
    usage_table = ev.resources[("aws_dynamodb_table", "usage")]["name"]
    try:
        d.c("sts").assume_role(RoleArn=role_arn, RoleSessionName="journey-llm-usage")
        j.check("the llm-usage role can be assumed by Lambda only (AssumeRole by the account is denied)", False,
                "AssumeRole succeeded")
    except ClientError as e:
        j.check("the llm-usage role can be assumed by Lambda only (AssumeRole by the account is denied)",
                "AccessDenied" in e.response.get("Error", {}).get("Code", ""), str(e))
    # The role's trust policy admits Lambda only, so the write probe runs as a test-fixture
    # IAM user (not in the .tf) holding exactly the role's permission document.
    iam = d.c("iam")
    probe_user = "journey-llm-usage-probe"
    iam.create_user(UserName=probe_user)
    iam.put_user_policy(UserName=probe_user, PolicyName="llm-usage-permissions", PolicyDocument=emulator_policy(policy))
    ak = iam.create_access_key(UserName=probe_user)["AccessKey"]
    ddb = boto3.client("dynamodb", endpoint_url=d.endpoint, region_name=d.region,
                       aws_access_key_id=ak["AccessKeyId"], aws_secret_access_key=ak["SecretAccessKey"])
    probe = {"user_id": {"S": sub}, "sk": {"S": "journey#write-probe"}}
    try:
        ddb.get_item(TableName=usage_table, Key={"user_id": {"S": sub}, "sk": {"S": "budget#" + today[:7]}})
        j.check("with the llm-usage permissions: GetItem on the usage table allowed", True)
    except ClientError as e:
        j.check("with the llm-usage permissions: GetItem on the usage table allowed", False, str(e))
    writes = [
        ("PutItem", lambda: ddb.put_item(TableName=usage_table, Item=probe)),
        ("UpdateItem", lambda: ddb.update_item(TableName=usage_table, Key=probe, UpdateExpression="SET x = :x",
                                               ExpressionAttributeValues={":x": {"N": "1"}})),
        ("DeleteItem", lambda: ddb.delete_item(TableName=usage_table, Key=probe)),
    ]
    for op, call in writes:
        try:
            call()
            j.check(f"with the llm-usage permissions: {op} on the usage table denied", False, f"{op} succeeded")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            j.check(f"with the llm-usage permissions: {op} on the usage table denied", "AccessDenied" in code, str(e))
    d.c("dynamodb").delete_item(TableName=usage_table, Key=probe)  # in case a write got through


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="ministack URL, e.g. http://127.0.0.1:4566")
    ap.add_argument("--infra", default=str(Path(__file__).resolve().parent.parent / "infra"))
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="override a variable, like -var (lists/maps as JSON)")
    ap.add_argument("--deploy-only", action="store_true", help="create the resources, skip the journey")
    ap.add_argument("--ministack-log", help="ministack's log (with the function's output): checked for the key")
    ap.add_argument("--no-test-route", action="store_true",
                    help="skip the POST .../test checks (and the loopback provider stub)")
    a = ap.parse_args()

    overrides = {}
    for kv in a.var:
        k, _, v = kv.partition("=")
        overrides[k] = v
    # The access log is at debug (nothing per request at info); the journey turns it on so
    # that every function logs a line per request and each one is searched for keys.
    overrides.setdefault("log_filter", "info,access=debug")
    # ministack cannot run the streaming REST API (STREAMING_API_TYPES): the generate
    # routes stay on the HTTP API, the generate function buffered.
    overrides.setdefault("streaming_api", "false")
    stub = None
    if "provider_url_overrides" not in overrides and not a.deploy_only and not a.no_test_route:
        stub = ProviderStub()
        overrides["provider_url_overrides"] = json.dumps({"anthropic": stub.url})
        print(f"# provider_url_overrides = {{anthropic = {stub.url}}} (loopback stub for POST .../test)")
    try:
        ev = tfeval.Evaluator(a.infra, overrides)
        ev.check_validations()
        if ev.vars["streaming_api"]:
            raise Unsupported("streaming_api = true: ministack has no Cognito authorizers or response streaming "
                              "for REST APIs (tools/check_streaming_tf.py checks those resources from the .tf)")
        region = ev.vars["aws_region"]
        d = Deployer(ev, a.endpoint, region)
        d.deploy()
    except (Unsupported, EvalError, NotCreated) as e:
        print(f"FAIL deploy: {type(e).__name__}: {e}")
        print("0 passed, 1 failed")
        return 1
    print(f"# deployed {len(d.created)} resources from {a.infra}:")
    for r in d.created:
        print(f"#   {r}")
    if a.deploy_only:
        return 0
    api_id = ev.resources[("aws_apigatewayv2_api", "this")]["id"]
    stage = ev.resources[("aws_apigatewayv2_stage", "default")]["name"]
    j = Journey(d, f"{a.endpoint}/_aws/execute-api/{api_id}/{stage}")
    j.log_path = a.ministack_log
    try:
        run_journey(d, ev, j, stub)
    except Exception as e:  # a crash in the journey is a failure, with its reason
        j.check("journey ran to the end", False, f"{type(e).__name__}: {e}")
    print(f"{j.passed} passed, {j.failed} failed")
    return 1 if j.failed else 0


if __name__ == "__main__":
    sys.exit(main())
