package zoom

import (
	"bytes"
	"encoding/json"
	"testing"
)

// checkCreateUserBody holds createUserBody to json.Marshal's output.
func checkCreateUserBody(t *testing.T, req CreateUserRequest) {
	t.Helper()
	got, gotErr := createUserBody(req)
	want, wantErr := json.Marshal(req)
	if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("createUserBody(%q, %q) = %s, %v; want %s, %v (json.Marshal)", req.Action, req.UserInfo, got, gotErr, want, wantErr)
	}
}

// Ensure createUserBody writes exactly what json.Marshal writes, whether
// it splices the bytes or falls back.
func TestCreateUserBodyMatchesMarshal(t *testing.T) {
	for _, req := range []CreateUserRequest{
		{Action: "ssoCreate", UserInfo: json.RawMessage(`{"email":"a@example.com","type":1,"first_name":"Mary Ann","display_name":"M \"A\" \\ x"}`)},
		{Action: "create", UserInfo: json.RawMessage(`{"email":"a@example.com", "type":1}`)},
		{Action: "create", UserInfo: json.RawMessage("{\"first_name\":\"<b>&\u2028\u2029\"}")},
		{Action: "create", UserInfo: json.RawMessage(`{"first_name":"\u003cb\u003e"}`)},
		{Action: "cre<a>te", UserInfo: json.RawMessage(`{}`)},
		{Action: "café\n\"", UserInfo: json.RawMessage(`{}`)},
		{Action: "create", UserInfo: json.RawMessage("{\"a\":\"\xff\"}")},
		{Action: "create", UserInfo: json.RawMessage(`{"a":`)},
		{Action: "create", UserInfo: nil},
		{Action: "create", UserInfo: json.RawMessage(`null`)},
		{Action: "create", UserInfo: json.RawMessage(` {"a":[1, 2]} `)},
	} {
		checkCreateUserBody(t, req)
	}
}

func FuzzCreateUserBody(f *testing.F) {
	f.Add("ssoCreate", []byte(`{"email":"a@example.com","type":1,"first_name":"Mary Ann"}`))
	f.Add("create", []byte(`{"a":"<\u2028>","b":[1,{"c":null}]}`))
	f.Fuzz(func(t *testing.T, action string, userInfo []byte) {
		checkCreateUserBody(t, CreateUserRequest{Action: action, UserInfo: json.RawMessage(userInfo)})
	})
}
