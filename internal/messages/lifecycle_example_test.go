package messages_test

import (
	"errors"
	"fmt"

	"github.com/zoomprov/consumer/internal/messages"
)

func ExampleDecodeUpdate() {
	body := []byte(`{"email":"Alice@Example.com","user":{"job_title":"CTO","type":2}}`)
	req, err := messages.DecodeUpdate(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The PATCH body, byte for byte, and the ordering key.
	fmt.Printf("%s %s\n", req.User, messages.UserKey(req.Email))
	fmt.Printf("%v\n", req) // safe to log: the email is masked, the title redacted

	// Every problem at once, none of them quoting a value.
	bad := []byte(`{"email":"alice@example.com","user":{"email":"new@example.com","type":2,"zoom_one_type":16}}`)
	_, err = messages.DecodeUpdate(bad)
	var ve *messages.ValidationError
	if errors.Is(err, messages.ErrInvalid) && errors.As(err, &ve) {
		for _, f := range ve.Fields {
			fmt.Printf("%s: %s\n", f.Field, f.Reason)
		}
	}
	// Output:
	// {"job_title":"CTO","type":2} alice@example.com
	// {Email:A***@Example.com User:[redacted] Profile:{Type:2 JobTitle:[redacted]}}
	// user: may change only one of type, plan_united_type and zoom_one_type at a time
	// user.email: the e-mail cannot be changed here
}

func ExampleDecodeDelete() {
	req, err := messages.DecodeDelete([]byte(`{"email":"alice@example.com","transfer_email":"bob@example.com","transfer_recording":true}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Action, *req.TransferRecording, req.TransferMeeting == nil) // the default action; unset flags stay nil

	_, err = messages.DecodeDelete([]byte(`{"email":"alice@example.com","action":"remove","transfer_meeting":true}`))
	fmt.Println(err)
	// Output:
	// disassociate true true
	// messages: invalid request: action: must be disassociate or delete; transfer_email: is required when a transfer_* flag is given
}
