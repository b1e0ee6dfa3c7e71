// Command walkthrough is Keyward from Go: create a workspace, a scope and a
// key, verify the key, rotate it, revoke it, and delete the workspace, over
// gRPC (plaintext HTTP/2) with the client generated from proto/ by
// generate.sh.
//
//	examples/go/build-offline.sh /tmp/keyward-walkthrough   # Debian packages, no network
//	KEYWARD_SDK_KEY=kws_... /tmp/keyward-walkthrough --target 127.0.0.1:8080
//
// Prints one JSON object per step on stdout. The SDK key needs the scopes
// workspace:write, workspace_scopes:write, api_keys:write and api_keys:verify
// (or *). No API key secret is ever printed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	keywardv1 "keyward.example/walkthrough/gen/keyward/v1"
)

// show prints one step on one line: {"step": ..., then the message as proto3 JSON}.
func show(step string, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		log.Fatalf("%s: %v", step, err)
	}
	var body bytes.Buffer
	if err := json.Compact(&body, b); err != nil {
		log.Fatalf("%s: %v", step, err)
	}
	name, _ := json.Marshal(step)
	rest := strings.TrimPrefix(body.String(), "{")
	if rest != "}" {
		rest = "," + rest
	}
	fmt.Printf("{\"step\":%s%s\n", name, rest)
}

func main() {
	target := flag.String("target", "127.0.0.1:8080", "host:port of Keyward (gRPC over plaintext HTTP/2)")
	flag.Parse()
	log.SetFlags(0)
	sdkKey := os.Getenv("KEYWARD_SDK_KEY")
	if sdkKey == "" {
		log.Fatal("set KEYWARD_SDK_KEY to an SDK key")
	}

	conn, err := grpc.Dial(*target, grpc.WithInsecure())
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	defer conn.Close()
	workspaces := keywardv1.NewWorkspaceServiceClient(conn)
	scopes := keywardv1.NewScopeServiceClient(conn)
	keys := keywardv1.NewKeyServiceClient(conn)

	// Every call carries the SDK key as gRPC metadata and a deadline.
	call := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+sdkKey), cancel
	}
	must := func(step string, err error) {
		if err != nil {
			// A gRPC status: its code and message, never a secret.
			s := status.Convert(err)
			log.Fatalf("%s: %s: %s", step, s.Code(), s.Message())
		}
	}

	ctx, cancel := call()
	defer cancel()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	ws, err := workspaces.CreateWorkspace(ctx, &keywardv1.CreateWorkspaceRequest{
		Workspace: &keywardv1.Workspace{Name: "go-" + hex.EncodeToString(suffix), KeyPrefix: "go"},
	})
	must("create_workspace", err)
	show("create_workspace", ws.Workspace)
	workspaceID := ws.Workspace.Id

	// The example cleans up after itself, even when a step fails: deleting
	// the workspace revokes every key in it.
	fatal := func(step string, err error) {
		if err != nil {
			ctx, cancel := call()
			defer cancel()
			_, _ = workspaces.DeleteWorkspace(ctx, &keywardv1.DeleteWorkspaceRequest{Id: workspaceID})
			must(step, err)
		}
	}

	ctx, cancel = call()
	defer cancel()
	scope, err := scopes.CreateScope(ctx, &keywardv1.CreateScopeRequest{
		Scope: &keywardv1.Scope{WorkspaceId: workspaceID, Name: "balance_transfers"},
	})
	fatal("create_scope", err)
	show("create_scope", scope.Scope)

	ctx, cancel = call()
	defer cancel()
	created, err := keys.CreateKey(ctx, &keywardv1.CreateKeyRequest{
		Key: &keywardv1.ApiKey{
			WorkspaceId: workspaceID,
			CustomerId:  "cus_42",
			Name:        "production",
			Grants:      []*keywardv1.Grant{{Scope: "balance_transfers", Actions: []keywardv1.Action{keywardv1.Action_ACTION_READ}}},
		},
	})
	fatal("create_key", err)
	show("create_key", created.Key)
	secret := created.Secret // hand it to the customer; it is never shown again

	verify := func(step, secret string) {
		ctx, cancel := call()
		defer cancel()
		v, err := keys.VerifyKey(ctx, &keywardv1.VerifyKeyRequest{Key: secret, RequiredPermissions: []string{"balance_transfers:read"}})
		fatal(step, err)
		show(step, v)
	}
	verify("verify_key", secret)

	// A new secret; with no grace period the previous one stops at once.
	ctx, cancel = call()
	defer cancel()
	rotated, err := keys.RotateKey(ctx, &keywardv1.RotateKeyRequest{Id: created.Key.Id})
	fatal("rotate_key", err)
	show("rotate_key", rotated.Key)
	verify("verify_previous_secret", secret)
	secret = rotated.Secret
	verify("verify_rotated_key", secret)

	ctx, cancel = call()
	defer cancel()
	revoked, err := keys.RevokeKey(ctx, &keywardv1.RevokeKeyRequest{Id: created.Key.Id})
	fatal("revoke_key", err)
	show("revoke_key", revoked.Key)
	verify("verify_revoked_key", secret)

	ctx, cancel = call()
	defer cancel()
	_, err = workspaces.DeleteWorkspace(ctx, &keywardv1.DeleteWorkspaceRequest{Id: workspaceID})
	must("delete_workspace", err)
	show("delete_workspace", &keywardv1.DeleteWorkspaceRequest{Id: workspaceID})
}
