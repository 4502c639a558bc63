package sendqueue

import (
	"errors"
	"slices"
	"testing"
)

func TestFullQueueDisplacesOldest(t *testing.T) {
	q := New[int](2)
	for i := 1; i <= 2; i++ {
		if _, displaced, err := q.Push(i); displaced || err != nil {
			t.Fatalf("push %d: displaced %v err %v", i, displaced, err)
		}
	}
	oldest, displaced, err := q.Push(3)
	if err != nil || !displaced || oldest != 1 {
		t.Fatalf("push 3: oldest %d displaced %v err %v", oldest, displaced, err)
	}
	q.Close()
	if _, _, err := q.Push(4); !errors.Is(err, ErrClosed) {
		t.Errorf("push after close: %v", err)
	}
	var got []int
	for {
		v, ok := q.Pop()
		if !ok {
			break
		}
		got = append(got, v)
	}
	if !slices.Equal(got, []int{2, 3}) {
		t.Errorf("popped %v, want [2 3]", got)
	}
}

func TestPopWaitsForPush(t *testing.T) {
	q := New[string](4)
	done := make(chan string)
	go func() {
		v, _ := q.Pop()
		done <- v
	}()
	if _, _, err := q.Push("a"); err != nil {
		t.Fatal(err)
	}
	if v := <-done; v != "a" {
		t.Errorf("popped %q", v)
	}
}
