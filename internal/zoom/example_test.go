package zoom_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// ExampleClient_CreateUser creates a user and shows how a second attempt
// for the same email is recognised. It runs against the Zoom simulator; in
// production BaseURL and TokenURL stay empty.
func ExampleClient_CreateUser() {
	sim := testenv.NewSimulator(testenv.SimConfig{})
	defer sim.Close()

	client, err := zoom.New(zoom.Config{
		AccountID:    testenv.DefaultSimAccountID,
		ClientID:     testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL:      sim.APIURL(),
		TokenURL:     sim.TokenURL(),
		Timeout:      10 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	req := zoom.CreateUserRequest{
		Action:   "create",
		UserInfo: json.RawMessage(`{"email":"jane.doe@example.com","type":1,"first_name":"Jane"}`),
	}
	ctx := context.Background()
	res, err := client.CreateUser(ctx, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.StatusCode, res.User.Email, "created")

	_, err = client.CreateUser(ctx, req)
	var apiErr *zoom.APIError
	switch {
	case errors.Is(err, zoom.ErrUserExists):
		fmt.Println(req.Action, "again: user exists")
	case errors.As(err, &apiErr) && apiErr.Retryable():
		fmt.Println("try again later")
	case err != nil:
		fmt.Println("give up:", err)
	}
	// Output:
	// 201 jane.doe@example.com created
	// create again: user exists
}

// ExampleClient_GetUser looks a user up by email address.
func ExampleClient_GetUser() {
	sim := testenv.NewSimulator(testenv.SimConfig{})
	defer sim.Close()
	sim.AddUser("john.roe@example.com", 2)

	client, err := zoom.New(zoom.Config{
		AccountID:    testenv.DefaultSimAccountID,
		ClientID:     testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL:      sim.APIURL(),
		TokenURL:     sim.TokenURL(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	ctx := context.Background()
	res, err := client.GetUser(ctx, "john.roe@example.com")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.User.Email, res.User.Type, res.User.Status)

	_, err = client.GetUser(ctx, "nobody@example.com")
	fmt.Println("nobody found:", !errors.Is(err, zoom.ErrUserNotFound))
	// Output:
	// john.roe@example.com 2 active
	// nobody found: false
}
