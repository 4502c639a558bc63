package sendqueue

import (
	"context"
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

func TestWaitLenReturnsWhenTheSenderCatchesUp(t *testing.T) {
	q := New[int](8)
	for i := range 3 {
		if _, _, err := q.Push(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.WaitLen(t.Context(), 3); err != nil {
		t.Fatalf("wait for a length already reached: %v", err)
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if err := q.WaitLen(ended, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on an ended context with 3 queued for at most 1: %v, want context.Canceled", err)
	}

	waited := make(chan error, 1)
	go func() { waited <- q.WaitLen(t.Context(), 1) }()
	for range 2 {
		if _, ok := q.Pop(); !ok {
			t.Fatal("pop from a queue holding items")
		}
	}
	if err := <-waited; err != nil {
		t.Fatalf("wait after the queue fell to 1: %v", err)
	}
	if n := q.Len(); n != 1 {
		t.Errorf("length %d after two pops of three", n)
	}
}
