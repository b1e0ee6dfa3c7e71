#!/usr/bin/env python3
"""Keyward from Python: create a workspace, a scope and a key, verify the key,
and exchange it for a short-lived JWT, over gRPC with stubs generated from
proto/ (see generate.sh).

    examples/python/generate.sh
    KEYWARD_SDK_KEY=kws_... PYTHONPATH=examples/python/gen \\
        /usr/bin/python3 examples/python/walkthrough.py --target 127.0.0.1:8080

Prints one JSON object per step on stdout. The SDK key needs the scopes
workspace:write, workspace_scopes:write, api_keys:write and api_keys:verify
(or *). The API key's secret is never printed.
"""
import argparse
import json
import os
import sys
import uuid

import grpc
from google.protobuf import json_format

from keyward.v1 import key_pb2
from keyward.v1 import key_service_pb2, key_service_pb2_grpc
from keyward.v1 import scope_pb2, scope_service_pb2, scope_service_pb2_grpc
from keyward.v1 import token_service_pb2, token_service_pb2_grpc
from keyward.v1 import workspace_pb2, workspace_service_pb2, workspace_service_pb2_grpc


def show(step, message):
    body = json_format.MessageToDict(message)
    print(json.dumps({"step": step, **body}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:8080", help="host:port of Keyward (h2c)")
    args = parser.parse_args()
    sdk_key = os.environ.get("KEYWARD_SDK_KEY")
    if not sdk_key:
        sys.exit("set KEYWARD_SDK_KEY to an SDK key")
    auth = [("authorization", f"Bearer {sdk_key}")]

    with grpc.insecure_channel(args.target) as channel:
        workspaces = workspace_service_pb2_grpc.WorkspaceServiceStub(channel)
        scopes = scope_service_pb2_grpc.ScopeServiceStub(channel)
        keys = key_service_pb2_grpc.KeyServiceStub(channel)
        tokens = token_service_pb2_grpc.TokenServiceStub(channel)

        ws = workspaces.CreateWorkspace(
            workspace_service_pb2.CreateWorkspaceRequest(
                workspace=workspace_pb2.Workspace(name=f"python-{uuid.uuid4().hex[:8]}", key_prefix="py")
            ),
            metadata=auth,
            timeout=10,
        ).workspace
        show("create_workspace", ws)

        scope = scopes.CreateScope(
            scope_service_pb2.CreateScopeRequest(scope=scope_pb2.Scope(workspace_id=ws.id, name="balance_transfers")),
            metadata=auth,
            timeout=10,
        ).scope
        show("create_scope", scope)

        created = keys.CreateKey(
            key_service_pb2.CreateKeyRequest(
                key=key_pb2.ApiKey(
                    workspace_id=ws.id,
                    customer_id="cus_42",
                    name="production",
                    grants=[key_pb2.Grant(scope="balance_transfers", actions=[key_pb2.ACTION_READ])],
                )
            ),
            metadata=auth,
            timeout=10,
        )
        show("create_key", created.key)
        secret = created.secret  # hand it to the customer; it is never shown again

        verified = keys.VerifyKey(
            key_service_pb2.VerifyKeyRequest(key=secret, required_permissions=["balance_transfers:read"]),
            metadata=auth,
            timeout=10,
        )
        show("verify_key", verified)

        refused = keys.VerifyKey(
            key_service_pb2.VerifyKeyRequest(key=secret, required_permissions=["balance_transfers:delete"]),
            metadata=auth,
            timeout=10,
        )
        show("verify_key_missing_permission", refused)

        exchanged = tokens.ExchangeKey(
            token_service_pb2.ExchangeKeyRequest(key=secret, required_permissions=["balance_transfers:read"]),
            metadata=auth,
            timeout=10,
        )
        show("exchange_key", exchanged)

        try:
            keys.GetKey(key_service_pb2.GetKeyRequest(id=created.key.id), timeout=10)
        except grpc.RpcError as e:
            print(json.dumps({"step": "without_sdk_key", "code": e.code().name}), flush=True)

        # Clean up: deleting the workspace revokes its keys.
        workspaces.DeleteWorkspace(workspace_service_pb2.DeleteWorkspaceRequest(id=ws.id), metadata=auth, timeout=10)
        print(json.dumps({"step": "delete_workspace", "id": ws.id}), flush=True)


if __name__ == "__main__":
    main()
