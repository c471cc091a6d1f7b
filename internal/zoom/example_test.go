package zoom_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	case errors.As(err, &apiErr) && (apiErr.StatusCode == 429 || apiErr.StatusCode >= 500):
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

// ExampleClient_EachUser counts and walks the users of each status, page
// by page, starting a status again when its page token expired.
func ExampleClient_EachUser() {
	sim := testenv.NewSimulator(testenv.SimConfig{MaxPageSize: 2})
	defer sim.Close()
	for _, u := range []testenv.SimUser{
		{Email: "ann@example.com", Type: 2},
		{Email: "bob@example.com", Type: 1},
		{Email: "cy@example.com", Type: 2},
		{Email: "dee@example.com", Status: "inactive"},
		{Email: "eve@example.com", Action: "create"},
	} {
		if _, err := sim.AdminCreate(u); err != nil {
			fmt.Println(err)
			return
		}
	}

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
	for _, status := range []string{zoom.UserActive, zoom.UserInactive, zoom.UserPending} {
		n, err := client.CountUsers(ctx, status)
		if err != nil {
			fmt.Println(err)
			return
		}
		for try := 1; ; try++ {
			var emails []string
			err := client.EachUser(ctx, status, 0, func(u zoom.User) error {
				emails = append(emails, u.Email)
				return nil
			})
			if errors.Is(err, zoom.ErrPageTokenExpired) && try < 3 {
				continue // the walk took too long: start this status again
			}
			if err != nil {
				fmt.Println(err)
				return
			}
			slices.Sort(emails)
			fmt.Println(status, n, emails)
			break
		}
	}
	// Output:
	// active 3 [ann@example.com bob@example.com cy@example.com]
	// inactive 1 [dee@example.com]
	// pending 1 [eve@example.com]
}
