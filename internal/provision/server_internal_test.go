package provision

import (
	"testing"
)

func TestServerAtLeast(t *testing.T) {
	tests := []struct {
		version             string
		major, minor, patch int
		want                bool
	}{
		{"2.15.2", 2, 11, 0, true},
		{"2.11.0", 2, 11, 0, true},
		{"2.10.29", 2, 11, 0, false},
		{"2.9.10", 2, 11, 0, false},
		{"2.10.4", 2, 10, 4, true},
		{"2.10.3", 2, 10, 4, false},
		{"2.10.4-beta.1", 2, 10, 4, true},
		{"v2.12.1", 2, 11, 0, true},
		{"3.0.0", 2, 11, 0, true},
		{"1.99.99", 2, 11, 0, false},
		{"2.11", 2, 11, 0, true},
		{"", 2, 11, 0, false},
		{"garbage", 2, 11, 0, false},
		{"2.x.1", 2, 11, 0, false},
	}
	for _, tc := range tests {
		if got := serverAtLeast(tc.version, tc.major, tc.minor, tc.patch); got != tc.want {
			t.Errorf("serverAtLeast(%q, %d, %d, %d) = %v; want %v", tc.version, tc.major, tc.minor, tc.patch, got, tc.want)
		}
	}
}
