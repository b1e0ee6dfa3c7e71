"""keyward.grpc (the generated stubs) against a real server; skipped without grpcio and protobuf."""
import unittest

from _support import SDK_KEY, URL, needs_server, unique

try:
    import grpc

    from keyward.grpc import connect, key_pb2, key_service_pb2, scope_pb2, scope_service_pb2, workspace_pb2, workspace_service_pb2
except ImportError:  # the interpreter lacks grpcio or protobuf
    grpc = None

needs_grpc = unittest.skipIf(grpc is None, "keyward.grpc needs grpcio and protobuf (Debian: python3-grpcio python3-protobuf)")


@needs_grpc
@needs_server
class GrpcStubsTest(unittest.TestCase):
    def test_create_and_verify_over_grpc(self):
        target = URL.split("://", 1)[1].rstrip("/")
        with connect(target, SDK_KEY) as kw:
            ws = kw.workspaces.CreateWorkspace(
                workspace_service_pb2.CreateWorkspaceRequest(workspace=workspace_pb2.Workspace(name=unique("py-grpc"))), timeout=10
            ).workspace
            try:
                kw.scopes.CreateScope(
                    scope_service_pb2.CreateScopeRequest(scope=scope_pb2.Scope(workspace_id=ws.id, name="balance_transfers")), timeout=10
                )
                created = kw.keys.CreateKey(
                    key_service_pb2.CreateKeyRequest(
                        key=key_pb2.ApiKey(
                            workspace_id=ws.id,
                            customer_id="cus_grpc",
                            grants=[key_pb2.Grant(scope="balance_transfers", actions=[key_pb2.ACTION_READ])],
                        )
                    ),
                    timeout=10,
                )
                res = kw.keys.VerifyKey(
                    key_service_pb2.VerifyKeyRequest(key=created.secret, required_permissions=["balance_transfers:read"]), timeout=10
                )
                self.assertTrue(res.valid)
                self.assertEqual(key_service_pb2.VerifyCode.Name(res.code), "VERIFY_CODE_VALID")
                self.assertEqual((res.key_id, res.customer_id), (created.key.id, "cus_grpc"))
                with self.assertRaises(grpc.RpcError) as cm:
                    kw.scopes.CreateScope(scope_service_pb2.CreateScopeRequest(scope=scope_pb2.Scope(workspace_id=ws.id, name="Bad")), timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertTrue(cm.exception.details().startswith("scope.name: "))
            finally:
                kw.workspaces.DeleteWorkspace(workspace_service_pb2.DeleteWorkspaceRequest(id=ws.id), timeout=10)
        with connect(target, "kws_nobody_nothing") as anonymous:
            with self.assertRaises(grpc.RpcError) as cm:
                anonymous.keys.VerifyKey(key_service_pb2.VerifyKeyRequest(key="kw_x"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main()
