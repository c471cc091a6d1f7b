package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/zoomprov/consumer/internal/password"
)

const passwordUsage = `usage: consumer password <command> [flags]

commands:
  public-key    print the public key publishers seal autoCreate passwords for: that of the
                first private key of PASSWORD_KEY_FILE (standard base64, one line)

Run 'consumer password public-key -h' for its flags.`

// passwordCommand dispatches consumer password's subcommands.
func passwordCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, passwordUsage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "public-key":
		return passwordPublicKey(args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, passwordUsage)
		return nil
	default:
		return usageError("password: unknown command %q (want public-key)", args[0])
	}
}

// publicKeyJSON is `password public-key --json`'s line.
type publicKeyJSON struct {
	// KeyID is what a sealed password names: the first 4 bytes of the
	// SHA-256 of the public key, in hex.
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
}

// passwordPublicKey prints the public key of the first private key of
// PASSWORD_KEY_FILE, for publishers (PASSWORD_PUBLIC_KEY, or a file for
// `consumer publish --password-public-key`). It prints nothing secret.
func passwordPublicKey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("password public-key")
	asJSON := fs.Bool("json", false, "print the key id and the public key as one JSON object")
	cfg, err := parseSettings(fs, args, getenv, []setting{settingNamed(passwordKeySetting)})
	if err != nil {
		return flagError(fs, stderr, err)
	}
	if cfg.PasswordKeys == nil {
		return usageError("password public-key: no private key: set %s or give --password-key-file (make one with: head -c 32 /dev/urandom > password.key)", passwordKeySetting)
	}
	pub := cfg.PasswordKeys.PublicKey()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(publicKeyJSON{KeyID: password.KeyID(pub), PublicKey: password.EncodePublicKey(pub)})
	}
	_, err = fmt.Fprintln(stdout, password.EncodePublicKey(pub))
	return err
}
