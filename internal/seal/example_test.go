package seal_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/zoomprov/consumer/internal/seal"
)

// A dead letter's password is sealed with the current key; after a
// rotation, a keyring holding the new key first and the old one second
// still opens it, and one without the old key says which key is missing.
func Example() {
	oldKey := bytes.Repeat([]byte{1}, seal.KeySize) // in production: seal.Load(path)
	newKey := bytes.Repeat([]byte{2}, seal.KeySize)

	before, err := seal.New(oldKey)
	if err != nil {
		panic(err)
	}
	// The context binds the token to its dead letter and field.
	context := []byte("5:req-1:user_info.password")
	token, err := before.Seal([]byte(`"Zx9!kq2Lm"`), context)
	if err != nil {
		panic(err)
	}
	id, _ := seal.TokenKeyID(token)
	fmt.Println(strings.HasPrefix(token, seal.Prefix), id == before.ID())

	after, _ := seal.New(newKey, oldKey)
	plain, err := after.Open(token, context)
	fmt.Printf("%s %v\n", plain, err)

	onlyNew, _ := seal.New(newKey)
	_, err = onlyNew.Open(token, context)
	fmt.Println(errors.Is(err, seal.ErrUnknownKey), err)

	_, err = after.Open(token[:len(token)-1], context)
	fmt.Println(errors.Is(err, seal.ErrTampered))

	_, err = after.Open(token, []byte("5:req-2:user_info.password"))
	fmt.Println(errors.Is(err, seal.ErrTampered))
	// Output:
	// true true
	// "Zx9!kq2Lm" <nil>
	// true seal: sealed with key 2a7cc7dc, which is not among the keys given
	// true
	// true
}
