package messages

import "testing"

// Ensure Decode reads the password in every form a publisher may send it:
// spaced out, with an escaped key or value, in user_info given as a
// string, and for an action that drops it before the Zoom call. The
// dead-letter scanner (internal/deadletter) finds it in the same bodies.
func TestDecodePasswordForms(t *testing.T) {
	bodies := []string{
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"Zx9!kq2Lm","first_name":"Ann"}}`,
		"{\n  \"action\": \"autoCreate\",\n  \"user_info\": {\n    \"password\" : \"Zx9!kq2Lm\",\n    \"email\": \"a@example.com\", \"type\": 1\n  }\n}\n",
		`{"user_info":{"type":1,"p\u0061ssword":"Zx9!\u006bq2Lm","email":"a@example.com","last_name":"M\u00fcller"},"action":"autoCreate"}`,
		`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"password\":\"Zx9!\\\"kq2Lm\",\"display_name\":\"Ann \\u00e9\"}"}`,
		`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"p\\u0061ssword\":\"Zx9!kq2Lm\"}"}`,
		`{"action":"create","user_info":{"email":"a@example.com","type":2,"feature":{"zoom_phone":true},"password":"Zx9!kq2Lm"}}`,
	}
	want := []string{"Zx9!kq2Lm", "Zx9!kq2Lm", "Zx9!kq2Lm", `Zx9!"kq2Lm`, "Zx9!kq2Lm", "Zx9!kq2Lm"}
	for i, body := range bodies {
		r, err := Decode([]byte(body))
		if err != nil || r.UserInfo.Password != want[i] {
			t.Errorf("Decode(%s) = password %q, %v; want %q, nil", body, r.UserInfo.Password, err, want[i])
		}
	}
}
