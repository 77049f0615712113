package vigil_test

import (
	"fmt"
	"testing"

	"github.com/vigil-health/vigil"
)

func TestPartitionOf(t *testing.T) {
	for _, n := range []int{-1, 0, 1} {
		if got := vigil.PartitionOf("pat-1", n); got != 0 {
			t.Errorf("PartitionOf(pat-1, %d) = %d, want 0", n, got)
		}
	}
	if got := vigil.PartitionOf("", 16); got != 0 {
		t.Errorf("no patient: partition %d, want 0", got)
	}
	// FNV-1a 32 of "a" is 0xe40c292c: fixed, so partitions never move
	// between builds.
	if got, want := vigil.PartitionOf("a", 16), int(uint32(0xe40c292c)%16); got != want {
		t.Errorf("PartitionOf(a, 16) = %d, want %d", got, want)
	}
	seen := map[int]int{}
	for i := range 1600 {
		p := vigil.PartitionOf(fmt.Sprintf("pat-%d", i), 16)
		if p < 0 || p >= 16 {
			t.Fatalf("partition %d out of range", p)
		}
		if vigil.PartitionOf(fmt.Sprintf("pat-%d", i), 16) != p {
			t.Fatal("not stable")
		}
		seen[p]++
	}
	for p := range 16 {
		if seen[p] < 50 {
			t.Errorf("partition %d got %d of 1600 patients: badly spread", p, seen[p])
		}
	}
}
