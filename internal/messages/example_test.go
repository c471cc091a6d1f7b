package messages_test

import (
	"errors"
	"fmt"

	"github.com/zoomprov/consumer/internal/messages"
)

func ExampleDecode() {
	body := []byte(`{"action":"autoCreate","user_info":{"email":"alice@example.com","type":1,"password":"S3cure-enough"}}`)
	req, err := messages.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Action, req.UserInfo.Type)
	fmt.Printf("%v\n", req.UserInfo) // safe to log: the password is redacted

	// An invalid request lists every problem, and never the password.
	bad := []byte(`{"action":"autoCreate","user_info":{"email":"Alice <alice@example.com>","type":"1","password":"short","phone":"555"}}`)
	_, err = messages.Decode(bad)
	fmt.Println(errors.Is(err, messages.ErrInvalid))
	var ve *messages.ValidationError
	if errors.As(err, &ve) {
		for _, f := range ve.Fields {
			fmt.Printf("%s: %s\n", f.Field, f.Reason)
		}
	}
	// Output:
	// autoCreate 1
	// {Email:a***@example.com Type:1 FirstName: LastName: DisplayName: Password:[redacted] Feature:<nil> PlanUnitedType: DivisionIDs:[] LicenseInfoList:[]}
	// true
	// user_info.email: must be a bare email address such as name@example.com, without a display name or angle brackets
	// user_info.password: must be 8 to 32 characters
	// user_info.phone: unknown field
	// user_info.type: must be an integer
}
