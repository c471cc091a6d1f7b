package messages

import (
	"errors"
	"strings"
	"testing"
)

// A password sealed for the service, made by libsodium's crypto_box_seal
// (the test vector of internal/password); longer than 32 characters, as
// every sealed password is.
const sealedPassword = "sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1OZxeIi/w/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD/v5NtuTtS3ydoAnro8="

// Ensure an autoCreate request may carry its password sealed for the
// service, in both forms of user_info: Decode checks its shape only (the
// length rule waits until the service opens it) and keeps it as it is.
func TestDecodeSealedPassword(t *testing.T) {
	for _, body := range []string{
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1OZxeIi/w/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD/v5NtuTtS3ydoAnro8="}}`,
		`{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"password\":\"sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1OZxeIi\\/w\\/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD\\/v5NtuTtS3ydoAnro8=\"}"}`,
	} {
		r, err := Decode([]byte(body))
		if err != nil || r.UserInfo.Password != sealedPassword {
			t.Errorf("Decode(%s) = password %q, %v; want the sealed password as it is", body, r.UserInfo.Password, err)
		}
	}
}

// Ensure a value that starts as a sealed password but is not well formed
// makes the request invalid, with a reason that does not quote it.
func TestDecodeMalformedSealedPassword(t *testing.T) {
	for _, body := range []string{
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"sealedbox:v1:37A9BB05:WkdS0vmG6u25uWc1OZxeIi/w/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD/v5NtuTtS3ydoAnro8="}}`,
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1OZxeIi/w/YMcamS7iuOgUdFKyGS4QwuiYq3w+ivWf9+iEdswD/v5NtuTtS3ydoAnro8"}}`,
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"sealedbox:v1:37a9bb05:WkdS0vmG6u25uWc1"}}`,
		`{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"sealedbox:v1:hunter22"}}`,
	} {
		_, err := Decode([]byte(body))
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "user_info.password" || !strings.Contains(ve.Fields[0].Reason, "well-formed sealed password") {
			t.Errorf("Decode(%s) = %v; want user_info.password: not a well-formed sealed password", body, err)
			continue
		}
		if strings.Contains(err.Error(), "WkdS") || strings.Contains(err.Error(), "hunter22") {
			t.Errorf("Decode(%s) = %q; want no part of the value in the error", body, err)
		}
	}
}
